-- The rules engine's queue of pending call events is written without WAL (issue 17, ticket
-- throughput). Every stored event was written twice to the WAL: its row in call_events (the
-- durable log, what an acknowledgement promises) and its copy in call_events_pending (the
-- engine's work list, migration 012), then once more when the engine deleted the copy; the
-- copy and its two indexes were 43 % of the WAL of the event log's insert. The queue holds
-- nothing the log does not: which events are pending follows from call_events and the calls'
-- rows, so it need not survive a crash of PostgreSQL, only be rebuilt after one.
--
-- An UNLOGGED table keeps its rows across a clean shutdown and restart, but crash recovery
-- (PostgreSQL killed, the machine lost) empties it, and a standby promoted after a failover
-- starts with it empty. call_events_pending_intact is an unlogged table of one row, emptied by
-- the same recovery: while it has no row the queue may be missing events, the engine applies
-- nothing (its batches check the row), and call_events_pending_restore() (run by the engine's
-- sweep, or by hand) puts back every event not applied yet.
--
-- What "not applied yet" is, durably: an event of call_events that is not marked (legacy_applied_at,
-- refused_at) whose seq is above its call's last_seq (the engine applies a call's events in seq
-- order and saves last_seq in the transaction of their effects; an event set aside advances it
-- too), or whose seq lies in one of the call's gaps: seqs the engine applied past after the
-- gap timeout (call_event_gaps, written in the same transaction). A late event, applied after
-- its gap was passed, takes its seq out of the gap in the transaction that applies it.
ALTER TABLE call_events_pending SET UNLOGGED;

CREATE TABLE call_event_gaps (
    call_id   text NOT NULL,
    from_seq  bigint NOT NULL,
    to_seq    bigint NOT NULL,
    PRIMARY KEY (call_id, from_seq),
    CHECK (from_seq <= to_seq)
);

CREATE UNLOGGED TABLE call_events_pending_intact (
    intact boolean PRIMARY KEY DEFAULT true CHECK (intact)
);
INSERT INTO call_events_pending_intact DEFAULT VALUES;

-- Rebuilds the queue when crash recovery emptied it: returns how many events it queued again,
-- or NULL when the queue was intact. Idempotent and safe beside running engines and event
-- writers: one rebuild at a time (the lock), events already queued are skipped, and no engine
-- applies anything until the row of call_events_pending_intact is back (at this commit).
CREATE FUNCTION call_events_pending_restore() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM call_events_pending_intact) THEN
        RETURN NULL;
    END IF;
    LOCK TABLE call_events_pending_intact IN EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM call_events_pending_intact) THEN
        RETURN NULL; -- another node's engine rebuilt it meanwhile
    END IF;
    INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
        SELECT e.pos, e.call_id, e.seq, e.body, e.received_at
        FROM call_events e LEFT JOIN calls c ON c.id = e.call_id
        WHERE e.legacy_applied_at IS NULL AND e.refused_at IS NULL
          AND (e.seq > coalesce(c.last_seq, 0)
               OR EXISTS (SELECT 1 FROM call_event_gaps g
                          WHERE g.call_id = e.call_id AND e.seq BETWEEN g.from_seq AND g.to_seq))
    ON CONFLICT (pos) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO call_events_pending_intact DEFAULT VALUES;
    RETURN n;
END
$$;

---- create above / drop below ----

-- A queue a crash emptied is rebuilt first: a logged queue is never rebuilt.
SELECT call_events_pending_restore();
DROP FUNCTION call_events_pending_restore();
DROP TABLE call_events_pending_intact;
DROP TABLE call_event_gaps;
ALTER TABLE call_events_pending SET LOGGED;
