-- Custom data of calls mapped to ticket fields (CF-4, issue 16). calls.data is the call's custom
-- data (the data objects of its call.started and call.ivr_selected events, later keys winning);
-- tickets.fields holds the ticket fields that ticketing.settings.custom_data_fields fills from it,
-- by field name. Writes to fields are merges (fields || new), so a field set by one call stays
-- when a later call on the same ticket does not carry it, and the engine never writes a closed
-- ticket's fields (its UPDATE excludes closed tickets).
ALTER TABLE calls ADD COLUMN data jsonb NOT NULL DEFAULT '{}';
ALTER TABLE tickets ADD COLUMN fields jsonb NOT NULL DEFAULT '{}';

---- create above / drop below ----

ALTER TABLE tickets DROP COLUMN fields;
ALTER TABLE calls DROP COLUMN data;
