-- Dead letters of the event log (package ticketing/eventlog): call events PostgreSQL refused
-- for what they hold (SQLSTATE class 22 data exception or 23 integrity violation, e.g. a NUL
-- in a string, which jsonb and text refuse) or that could not even be encoded. The event log
-- sets each one aside here, alone, so that it never blocks the events around it.
--
-- raw is the event exactly as the log had it (its JSON encoding), as bytes, so that it can
-- always be stored whatever it holds. event_id, call_id and type are copies cleaned of what
-- PostgreSQL refuses, for finding a call's dead letters; seq is the event's. error and sqlstate
-- say why it was refused; node is the gateway that refused it; stage is where (flush: on its
-- way from the emitters, replay: from the spool, file: kept in the dead-letter file while the
-- database was away and moved here later). reinjected_at is set by the operator who fixed the
-- event and put it back into call_events (docs/OPERATIONS.md, "Dead letters").
CREATE TABLE call_events_dead (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL DEFAULT '',
    call_id       text NOT NULL DEFAULT '',
    seq           bigint NOT NULL DEFAULT 0,
    type          text NOT NULL DEFAULT '',
    raw           bytea NOT NULL,
    error         text NOT NULL DEFAULT '',
    sqlstate      text NOT NULL DEFAULT '',
    node          text NOT NULL DEFAULT '',
    stage         text NOT NULL DEFAULT '' CHECK (stage IN ('', 'flush', 'replay', 'file')),
    failed_at     timestamptz NOT NULL DEFAULT now(),
    dead_at       timestamptz NOT NULL DEFAULT now(),
    reinjected_at timestamptz
);
-- The same event set aside twice (a restart between setting it aside and moving past it in the
-- spool, or the same bad event sent twice) is one dead letter.
CREATE UNIQUE INDEX call_events_dead_raw_key ON call_events_dead (sha256(raw));
CREATE INDEX call_events_dead_call_idx ON call_events_dead (call_id);
CREATE INDEX call_events_dead_pending_idx ON call_events_dead (dead_at) WHERE reinjected_at IS NULL;

---- create above / drop below ----

DROP TABLE call_events_dead;
