-- The rules engine learns which calls have new events from a notification, not from sweeping
-- the pending queue (issue 17, ticket throughput). Until now every pass of every node's engine
-- walked call_events_pending's index from one call to the next to find the calls with pending
-- events: at 100 calls/s the top statement of PostgreSQL. Now the queue's trigger also sends,
-- on the channel switchboard_call_events, the ids of the calls it queued events for: a JSON
-- array of call ids per notification, sent when the storing transaction commits (NOTIFY's
-- own rule), so that a listener never hears of an event it cannot read yet. The engine still
-- sweeps the queue now and then (at start, after its listening connection was lost, and every
-- few seconds), so a notification nobody heard never leaves an event behind.
--
-- A notification's payload must stay under 8,000 bytes: the call ids go in chunks of about
-- 6,000 bytes of JSON, and a call id longer than 1,000 bytes of JSON is not sent at all (no
-- gateway makes one; the sweep finds its events). A notification never fails the insert.
CREATE OR REPLACE FUNCTION call_events_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
        SELECT pos, call_id, seq, body, received_at FROM stored_events
        WHERE legacy_applied_at IS NULL AND refused_at IS NULL;
    PERFORM pg_notify('switchboard_call_events', json_agg(id)::text)
    FROM (
        SELECT id, sum(octet_length(to_json(id)::text) + 2) OVER (ORDER BY id) / 6000 AS chunk
        FROM (SELECT DISTINCT call_id AS id FROM stored_events
              WHERE legacy_applied_at IS NULL AND refused_at IS NULL) d
        WHERE octet_length(to_json(id)::text) <= 1000
    ) c
    GROUP BY chunk;
    RETURN NULL;
END
$$;

---- create above / drop below ----

CREATE OR REPLACE FUNCTION call_events_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_events_pending (pos, call_id, seq, body, received_at)
        SELECT pos, call_id, seq, body, received_at FROM stored_events
        WHERE legacy_applied_at IS NULL AND refused_at IS NULL;
    RETURN NULL;
END
$$;
