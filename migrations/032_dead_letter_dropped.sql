-- A dead letter the operator decided not to put back (switchboard dead-letters drop) is marked
-- dropped_at, not reinjected_at: the table keeps, for each event set aside, whether it reached
-- call_events after all. A dead letter is pending while neither is set.
ALTER TABLE call_events_dead
    ADD COLUMN dropped_at timestamptz,
    ADD CONSTRAINT call_events_dead_one_end CHECK (reinjected_at IS NULL OR dropped_at IS NULL);
DROP INDEX call_events_dead_pending_idx;
CREATE INDEX call_events_dead_pending_idx ON call_events_dead (dead_at)
    WHERE reinjected_at IS NULL AND dropped_at IS NULL;

---- create above / drop below ----

DROP INDEX call_events_dead_pending_idx;
CREATE INDEX call_events_dead_pending_idx ON call_events_dead (dead_at) WHERE reinjected_at IS NULL;
ALTER TABLE call_events_dead DROP CONSTRAINT call_events_dead_one_end, DROP COLUMN dropped_at;
