-- Recording metadata (package recordings, CD-6, TU-5): one row per call recording or voicemail
-- message. The audio is a WAV file at path, relative to the configured recordings directory.
-- state: recording (being written; after a crash Repair completes it) → ready | failed, and
-- deleted once the audio is gone for good (CD-6 or retention). deleted_by is the user who
-- deleted it (null: the system); no foreign key, so that users can be deleted and a recording
-- stays auditable.
CREATE TABLE recordings (
    id          text PRIMARY KEY,
    call_id     text NOT NULL,
    kind        text NOT NULL DEFAULT 'call' CHECK (kind IN ('call', 'voicemail')),
    node        text NOT NULL DEFAULT '',
    path        text NOT NULL,
    state       text NOT NULL DEFAULT 'recording' CHECK (state IN ('recording', 'ready', 'failed', 'deleted')),
    channels    smallint NOT NULL CHECK (channels IN (1, 2)),
    duration_ms bigint NOT NULL DEFAULT 0,
    size_bytes  bigint NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ready_at    timestamptz,
    deleted_at  timestamptz,
    deleted_by  bigint,
    error       text,
    -- Pause intervals (agents pausing during a card number): [{from_ms, to_ms, paused_at,
    -- resumed_at, paused_by, resumed_by}], the audit of who paused the recording and when.
    pauses      jsonb NOT NULL DEFAULT '[]',
    CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);
-- A deleted recording's file name may be taken again by a later recording of the same call.
CREATE UNIQUE INDEX recordings_path_key ON recordings (path) WHERE state <> 'deleted';
CREATE INDEX recordings_call_idx ON recordings (call_id);
-- Repair (state recording of this node) and retention (oldest first) scan by state.
CREATE INDEX recordings_state_idx ON recordings (state, created_at) WHERE state <> 'deleted';

---- create above / drop below ----

DROP TABLE recordings;
