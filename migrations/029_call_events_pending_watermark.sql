-- The rebuild of the rules engine's queue after a PostgreSQL crash reads only the events that
-- can be pending (issue 17, ticket throughput). Migration 028's call_events_pending_restore()
-- read all of call_events — 8–12 s for 600,000 events on a loaded test machine, growing with
-- the log forever — while what can be pending after a crash is the events stored since the
-- engine last caught up, a few seconds' worth. call_events_pending_watermark holds a position
-- W of call_events such that every event pending now or later has pos >= W; the rebuild reads
-- call_events from W on (its primary key's range), and the engine raises W as it applies.
--
-- Why W is safe. An event is pending from the commit of its insert (the queue's trigger) to the
-- commit that applies it. Positions come from call_events' sequence (pos), taken as each row is
-- inserted; transactions commit in any order, so an insert still in flight may hold a position
-- below events already queued (and already applied). The engine therefore raises W in two
-- steps, each a call of call_events_pending_advance() from its periodic sweep:
--   1. it notes a candidate: C = the sequence's next value (every position below C has been
--      handed out) and X = the first transaction id not yet assigned (pg_current_snapshot()'s
--      xmax, read after C). Every insert into call_events takes its transaction id before it
--      takes a position (the BEFORE STATEMENT trigger below), so the transaction of any
--      position below C has an id below X;
--   2. at a later call, once no transaction with an id below X is running (the snapshot's xmin
--      >= X), every event with a position below C is committed (or rolled back) and, if still
--      pending, in the queue: W becomes min(C, the queue's lowest position), read in that same
--      snapshot, and only while the queue is whole (crash recovery empties it, 028).
-- Events taking positions after step 1 have pos >= C. W only ever grows (several nodes'
-- engines advance it; each candidate is safe). A candidate is only good for the queue it was
-- noted beside: crash recovery (or a promoted standby) may hand out transaction ids and
-- positions again from below the candidate's, so the queue's marker now carries a token, new
-- at each rebuild, and a candidate noted beside another token is dropped. W itself survives a
-- crash: its commit's WAL flush covers the sequence's (logged ahead of what it hands out), so
-- the recovered sequence resumes at or above every published W. The sequence must hand out values one at a time (CACHE 1, its
-- default): with a per-session cache a value below C could be used after C was read, and the
-- function then leaves W where it is. The candidate is held by the caller (each engine keeps its
-- own; a candidate from any engine is safe to publish).
-- The queue keeps one index instead of two (issue 17: the database's CPU per stored event). Its
-- primary key was pos, beside an index on (call_id, seq) for the engine's walk and reads; every
-- stored event paid an entry in each (about 1 µs of the event log's insert, a twentieth of it,
-- measured with pg_stat_statements on an idle machine). (call_id, seq) is unique in call_events,
-- so it is the queue's key now; the engine deletes what it applied by the rows' ctid, read with
-- the events in the same transaction (a TID scan, no index), and the few readers by pos — the
-- backlog gauge's oldest event, the watermark's lowest position — read the queue, which the
-- engine keeps small, every few seconds.
ALTER TABLE call_events_pending DROP CONSTRAINT call_events_pending_pkey;
DROP INDEX call_events_pending_call;
ALTER TABLE call_events_pending ADD PRIMARY KEY (call_id, seq);

CREATE TABLE call_events_pending_watermark (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    pos  bigint NOT NULL
);
-- From the start of the log until an engine has advanced it: the first rebuild reads it all.
INSERT INTO call_events_pending_watermark (pos) VALUES (0);

-- The marker of a whole queue (028) gets a token, new each time a rebuild puts the marker back.
ALTER TABLE call_events_pending_intact ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();

-- Every statement storing events takes its transaction id before its rows take positions (a
-- transaction takes one only at its first write otherwise: after the first row's position).
-- A statement-level trigger: one call per insert or COPY, whatever the number of rows; it does
-- not stop COPY from writing its rows a page at a time (only row-level BEFORE triggers do).
CREATE FUNCTION call_events_take_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE TRIGGER call_events_take_xid BEFORE INSERT ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION call_events_take_xid();

-- Step 2 with the candidate (cand_pos, cand_xmax, cand_token) of an earlier call (NULLs: none
-- yet), then step 1: returns the new candidate (NULLs while the queue is not whole or the
-- sequence caches values) and the watermark as it now is. Must run in READ
-- COMMITTED (each statement below takes its own snapshot; it refuses otherwise), outside the
-- caller's other writes. Cheap: one row of the sequence, the queue's lowest position (its
-- primary key), the snapshot.
CREATE FUNCTION call_events_pending_advance(cand_pos bigint, cand_xmax bigint, cand_token uuid,
    OUT next_pos bigint, OUT next_xmax bigint, OUT next_token uuid, OUT watermark bigint)
LANGUAGE plpgsql AS $$
DECLARE
    one_at_a_time boolean;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'call_events_pending_advance must run in READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    IF cand_pos IS NOT NULL AND cand_xmax IS NOT NULL AND cand_token IS NOT NULL THEN
        -- One statement, one snapshot: no transaction older than the candidate is running, the
        -- queue is whole and the one the candidate was noted beside, and its lowest position
        -- is read as of that moment.
        UPDATE call_events_pending_watermark w
            SET pos = LEAST(cand_pos, coalesce((SELECT min(q.pos) FROM call_events_pending q), cand_pos))
            WHERE pg_snapshot_xmin(pg_current_snapshot()) >= cand_xmax::text::xid8
              AND EXISTS (SELECT 1 FROM call_events_pending_intact i WHERE i.token = cand_token)
              AND LEAST(cand_pos, coalesce((SELECT min(q.pos) FROM call_events_pending q), cand_pos)) > w.pos;
    END IF;
    SELECT s.seqcache = 1 INTO one_at_a_time FROM pg_sequence s
        WHERE s.seqrelid = pg_get_serial_sequence('call_events', 'pos')::regclass;
    -- First the queue's token (none: not whole, no candidate), then the sequence, then the
    -- snapshot, each a statement of its own, in this order.
    SELECT i.token INTO next_token FROM call_events_pending_intact i;
    IF one_at_a_time AND next_token IS NOT NULL THEN
        -- The next position the sequence hands out (nothing below it is still to be handed out).
        EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s',
            pg_get_serial_sequence('call_events', 'pos')) INTO next_pos;
        -- A later statement: its snapshot is taken after the read above.
        SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint INTO next_xmax;
    END IF;
    SELECT w.pos INTO watermark FROM call_events_pending_watermark w;
END
$$;

-- 028's rebuild, reading call_events from the watermark on.
CREATE OR REPLACE FUNCTION call_events_pending_restore() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    w bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM call_events_pending_intact) THEN
        RETURN NULL;
    END IF;
    LOCK TABLE call_events_pending_intact IN EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM call_events_pending_intact) THEN
        RETURN NULL; -- another node's engine rebuilt it meanwhile
    END IF;
    SELECT pos INTO w FROM call_events_pending_watermark;
    -- EXECUTE: planned with w's value (a range of the primary key), never as a cached generic
    -- plan that might read the whole log.
    EXECUTE $q$
        INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
        SELECT e.pos, e.call_id, e.seq, e.body, e.received_at
        FROM call_events e LEFT JOIN calls c ON c.id = e.call_id
        WHERE e.pos >= $1
          AND e.legacy_applied_at IS NULL AND e.refused_at IS NULL
          AND (e.seq > coalesce(c.last_seq, 0)
               OR EXISTS (SELECT 1 FROM call_event_gaps g
                          WHERE g.call_id = e.call_id AND e.seq BETWEEN g.from_seq AND g.to_seq))
        ON CONFLICT (call_id, seq) DO NOTHING$q$ USING coalesce(w, 0);
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO call_events_pending_intact DEFAULT VALUES;
    RETURN n;
END
$$;

---- create above / drop below ----

ALTER TABLE call_events_pending DROP CONSTRAINT call_events_pending_pkey;
ALTER TABLE call_events_pending ADD PRIMARY KEY (pos);
CREATE INDEX call_events_pending_call ON call_events_pending (call_id, seq);

CREATE OR REPLACE FUNCTION call_events_pending_restore() RETURNS bigint LANGUAGE plpgsql AS $$
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
DROP FUNCTION call_events_pending_advance(bigint, bigint, uuid);
ALTER TABLE call_events_pending_intact DROP COLUMN token;
DROP TRIGGER call_events_take_xid ON call_events;
DROP FUNCTION call_events_take_xid();
DROP TABLE call_events_pending_watermark;
