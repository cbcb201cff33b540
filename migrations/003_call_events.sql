-- The durable log of call lifecycle events (docs/events.md). An event is acknowledged to its
-- emitter once it is here (or in the local spool, replayed here later). The rules engine applies
-- pending events per call in seq order and marks them applied; a duplicate id, or a second event
-- with the same (call_id, seq), is dropped on insert.
CREATE TABLE call_events (
    pos          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,
    call_id      text NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    at           timestamptz NOT NULL,
    body         jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz,
    UNIQUE (call_id, seq)
);

CREATE INDEX call_events_pending ON call_events (call_id, seq) WHERE applied_at IS NULL;

---- create above / drop below ----

DROP TABLE call_events;
