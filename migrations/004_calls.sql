-- Call records kept by the rules engine from the call lifecycle events (docs/api.md, calls):
-- one row per call, the engine's working state for the durations of CD-3, and the ticket the
-- call went to. A failed event is marked applied with its error so it never blocks its call.
CREATE TABLE calls (
    id                 text PRIMARY KEY,
    direction          text NOT NULL DEFAULT 'inbound' CHECK (direction IN ('inbound', 'outbound')),
    from_number        text,
    to_number          text,
    line               text,
    caller_name        text,
    location           text,
    state              text NOT NULL DEFAULT 'started',
    ticket_id          bigint REFERENCES tickets (id),
    requester_id       bigint REFERENCES users (id),
    agent_id           bigint,
    queue              text,
    menu_path          text,
    language           text,
    outcome            text,
    started_at         timestamptz,
    answered_at        timestamptz,
    ended_at           timestamptz,
    -- CD-3, whole seconds once the call has ended.
    ivr_time           bigint NOT NULL DEFAULT 0,
    queue_time         bigint NOT NULL DEFAULT 0,
    ring_time          bigint NOT NULL DEFAULT 0,
    talk_time          bigint NOT NULL DEFAULT 0,
    hold_time          bigint NOT NULL DEFAULT 0,
    transfer_time      bigint NOT NULL DEFAULT 0,
    duration           bigint NOT NULL DEFAULT 0,
    -- Working state: the phase the call is in since when, and milliseconds per phase so far.
    phase              text NOT NULL DEFAULT 'ivr',
    phase_since        timestamptz,
    phase_ms           jsonb NOT NULL DEFAULT '{}',
    queued_at          timestamptz,
    -- Outbound dial choices (OB/TB rules) and the anonymous no_ticket policy (PM-3).
    ticket_choice      text,
    chosen_ticket_id   bigint,
    entered_number     boolean NOT NULL DEFAULT false,
    no_ticket          boolean NOT NULL DEFAULT false,
    abandoned_where    text,
    voicemail_id       text,
    recording_id       text,
    recording_seconds  bigint,
    csat               integer,
    last_seq           bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX calls_started_idx ON calls (started_at DESC, id DESC);
CREATE INDEX calls_requester_idx ON calls (requester_id, ended_at DESC) WHERE requester_id IS NOT NULL;
CREATE INDEX calls_ticket_idx ON calls (ticket_id) WHERE ticket_id IS NOT NULL;

ALTER TABLE call_events ADD COLUMN error text;

---- create above / drop below ----

ALTER TABLE call_events DROP COLUMN error;
DROP TABLE calls;
