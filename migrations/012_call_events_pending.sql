-- The rules engine's queue of pending call events (issue 17, ticket throughput). Until now an
-- event was pending while call_events.applied_at was NULL, and marking it applied was an UPDATE
-- of the event's row: a new row version with an entry in each of the table's indexes (the
-- partial index of pending events names applied_at, so the update is never HOT), the largest
-- single cost of applying events. Now a pending event is a row of call_events_pending, which
-- a trigger adds when the event is stored (whoever stores it: the event log, POST /call_events,
-- an operator re-injecting a dead letter), and which the engine deletes, in the transaction
-- that applies the event, in one statement per batch. call_events itself is written once.
--
-- applied_at is renamed legacy_applied_at: it keeps when the events stored before this
-- migration were applied, and is NULL for the events stored after it. Renaming it (rather than
-- leaving a column that no longer says what it did) also makes an engine of an earlier version,
-- still running during a rolling upgrade, fail its queries and apply nothing, instead of
-- applying again the events this version applied. An event the engine refuses and sets aside
-- is marked refused_at with its error (the column error), and leaves the queue like any other.
DROP INDEX call_events_pending;

-- The queue carries a copy of what the engine reads of an event (its body, when it was stored),
-- so that reading a batch's pending events is one index walk of the queue, as it was of the
-- old partial index, not a second lookup in call_events per event.
CREATE TABLE call_events_pending (
    pos         bigint PRIMARY KEY,
    call_id     text NOT NULL,
    seq         bigint NOT NULL,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL
) WITH (
    -- A queue: every row is deleted soon after it is inserted. Vacuum it after a few thousand
    -- dead rows, whatever its size, so that its indexes stay small.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000
);
-- The engine's sweep (the calls with pending events, in call id order) and its read of a
-- batch's pending events, per call in seq order.
CREATE INDEX call_events_pending_call ON call_events_pending (call_id, seq);

INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
    SELECT pos, call_id, seq, body, received_at FROM call_events WHERE applied_at IS NULL;

ALTER TABLE call_events RENAME COLUMN applied_at TO legacy_applied_at;
ALTER TABLE call_events ADD COLUMN refused_at timestamptz;

-- One statement-level trigger: one insert into the queue per insert into call_events, however
-- many events it stores. An event inserted already marked (legacy_applied_at or refused_at
-- set: a restored dump, a test's history) is not pending.
CREATE FUNCTION call_events_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
        SELECT pos, call_id, seq, body, received_at FROM stored_events
        WHERE legacy_applied_at IS NULL AND refused_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER call_events_enqueue AFTER INSERT ON call_events
    REFERENCING NEW TABLE AS stored_events
    FOR EACH STATEMENT EXECUTE FUNCTION call_events_enqueue();

---- create above / drop below ----

DROP TRIGGER call_events_enqueue ON call_events;
DROP FUNCTION call_events_enqueue();
ALTER TABLE call_events RENAME COLUMN legacy_applied_at TO applied_at;
-- Events applied under this version: applied when they left the queue (the time is not kept;
-- refused_at, or when they were stored, stands in for it).
UPDATE call_events e SET applied_at = coalesce(e.refused_at, e.received_at)
    WHERE e.applied_at IS NULL AND NOT EXISTS (SELECT 1 FROM call_events_pending p WHERE p.pos = e.pos);
ALTER TABLE call_events DROP COLUMN refused_at;
DROP TABLE call_events_pending;
CREATE INDEX call_events_pending ON call_events (call_id, seq) WHERE applied_at IS NULL;
