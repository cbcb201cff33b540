-- The audit trail (GET /api/v2/audit_logs, issue 16): the one table every audited action writes,
-- audits of migration 002, gets what the API lists of each entry — what it is about
-- (source_type, source_id), a description a person reads, and the client's address.
--
-- source_type is 'ticket', 'user' or 'account_setting' (the voice settings; no source_id).
-- ip_address is the address the request came from (the transaction's switchboard.ip, set by
-- the store from the request), null for the system and for rows written before this migration.
ALTER TABLE audits
    ADD COLUMN source_type        text,
    ADD COLUMN source_id          bigint,
    ADD COLUMN change_description text NOT NULL DEFAULT '',
    ADD COLUMN ip_address         inet;

-- audit_describe is the description of the entries whose details say everything (the kinds
-- written before this migration, and the requester changes the tickets trigger writes). Names
-- come from outside (API bodies, caller names): control characters, line separators and
-- bidirectional overrides become spaces.
CREATE FUNCTION audit_clean(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(coalesce(s, ''), E'[[:cntrl:]\u2028\u2029\u202a-\u202e\u2066-\u2069]', ' ', 'g')
$$;

CREATE FUNCTION audit_user_label(id bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN id IS NULL THEN 'nobody'
        ELSE coalesce((SELECT audit_clean(name) || ' ' FROM users WHERE users.id = $1), '') || '(user #' || id || ')' END
$$;

CREATE FUNCTION audit_describe(kind text, details jsonb) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE kind
        WHEN 'requester_changed' THEN
            'Requester changed from ' || audit_user_label((details->>'from')::bigint) || ' to ' ||
            audit_user_label((details->>'to')::bigint) ||
            CASE WHEN coalesce(details->>'reason', '') = '' THEN '' ELSE ' (' || audit_clean(details->>'reason') || ')' END
        WHEN 'identity_removed' THEN
            'Shared number ' || audit_clean(details->>'value') || ' removed from this user: ' ||
            audit_user_label((details->>'new_owner_id')::bigint) || ' was created as its owner (PM-9)'
        WHEN 'user_merged' THEN
            'Merged into ' || audit_user_label((details->>'target_id')::bigint) ||
            ' (' || coalesce(details->>'tickets', '0') || ' tickets moved)'
        WHEN 'ticket_merged' THEN
            CASE WHEN details ? 'target_id' THEN 'Merged into ticket #' || (details->>'target_id')
                 ELSE 'Tickets ' || coalesce((SELECT string_agg('#' || v, ', ') FROM jsonb_array_elements_text(details->'source_ids') v), '') ||
                      ' merged into this ticket' END
        WHEN 'recording_deleted' THEN
            'Recordings deleted: ' || coalesce((SELECT string_agg(audit_clean(v), ', ') FROM jsonb_array_elements_text(details->'recording_ids') v), '')
        ELSE audit_clean(kind)
    END
$$;

-- audits_fill completes a row its writer did not: the tickets trigger of 002 writes kind,
-- actor, ticket, user and details only.
CREATE FUNCTION audits_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.source_type IS NULL THEN
        IF NEW.ticket_id IS NOT NULL THEN
            NEW.source_type := 'ticket';
            NEW.source_id := NEW.ticket_id;
        ELSIF NEW.user_id IS NOT NULL THEN
            NEW.source_type := 'user';
            NEW.source_id := NEW.user_id;
        ELSE
            NEW.source_type := 'account_setting';
        END IF;
    END IF;
    IF NEW.change_description = '' THEN
        NEW.change_description := audit_describe(NEW.kind, NEW.details);
    END IF;
    IF NEW.ip_address IS NULL THEN
        NEW.ip_address := nullif(current_setting('switchboard.ip', true), '')::inet;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audits_fill BEFORE INSERT ON audits FOR EACH ROW EXECUTE FUNCTION audits_fill();

-- The entries written before: described the same way.
UPDATE audits SET
    source_type = CASE WHEN ticket_id IS NOT NULL THEN 'ticket' WHEN user_id IS NOT NULL THEN 'user' ELSE 'account_setting' END,
    source_id = coalesce(ticket_id, user_id),
    change_description = audit_describe(kind, details);
ALTER TABLE audits ALTER COLUMN source_type SET NOT NULL;
ALTER TABLE audits ADD CONSTRAINT audits_source_type_check CHECK (source_type IN ('ticket', 'user', 'account_setting'));

-- The API's orders and filters: by time (both ways), by actor, by source.
CREATE INDEX audits_created_idx ON audits (created_at, id);
CREATE INDEX audits_actor_idx ON audits (actor_id, created_at, id);
CREATE INDEX audits_source_idx ON audits (source_type, source_id, created_at, id);

---- create above / drop below ----

DROP INDEX audits_source_idx;
DROP INDEX audits_actor_idx;
DROP INDEX audits_created_idx;
DROP TRIGGER audits_fill ON audits;
DROP FUNCTION audits_fill();
DROP FUNCTION audit_describe(text, jsonb);
DROP FUNCTION audit_user_label(bigint);
DROP FUNCTION audit_clean(text);
ALTER TABLE audits DROP CONSTRAINT audits_source_type_check;
ALTER TABLE audits
    DROP COLUMN ip_address,
    DROP COLUMN change_description,
    DROP COLUMN source_id,
    DROP COLUMN source_type;
