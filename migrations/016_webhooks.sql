-- Webhooks (issue 20, Zendesk's webhooks API): an admin registers a URL and Switchboard posts
-- each call event (call_events) and each audited ticket or user change (audits) to it as JSON,
-- signed, in order, one at a time per webhook, retried with backoff until the receiver answers
-- 2xx. Delivery reads the two tables after the webhook's cursors; it writes nothing to them,
-- so storing events and applying them never wait on a receiver.
--
-- call_cursor is the call_events.pos and audit_cursor the audits.id delivered (or skipped, for
-- an event the webhook does not subscribe to) up to; a 2xx moves them in the same statement
-- that records the invocation's success, so a restart resumes from there (at-least-once: an
-- attempt whose 2xx was lost in a crash is sent again, with the same invocation id).
--
-- One node delivers a given webhook at a time: it holds the row's lease (leased_by,
-- lease_until, database time) and renews it while it works; a node that dies leaves the
-- lease to expire and another node takes the webhook over from its cursor.
CREATE TABLE webhooks (
    id             text PRIMARY KEY,
    name           text NOT NULL CHECK (name <> ''),
    description    text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    endpoint       text NOT NULL,
    http_method    text NOT NULL DEFAULT 'POST',
    request_format text NOT NULL DEFAULT 'json',
    subscriptions  text[] NOT NULL DEFAULT '{}',
    custom_headers jsonb NOT NULL DEFAULT '{}',
    -- {type, add_position, data}: credentials sent to the receiver; never returned by the API.
    authentication jsonb,
    external_source jsonb,
    signing_secret text NOT NULL,
    call_cursor    bigint NOT NULL DEFAULT 0,
    audit_cursor   bigint NOT NULL DEFAULT 0,
    leased_by      text,
    lease_until    timestamptz,
    created_by     bigint,
    updated_by     bigint,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One invocation per event a webhook is sent; its attempts below. source is 'call'
-- (source_pos = call_events.pos) or 'audit' (audits.id): a worker that restarts mid-retry finds
-- the invocation it was retrying and carries on counting its attempts.
CREATE TABLE webhook_invocations (
    id                  bigserial PRIMARY KEY,
    webhook_id          text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    source              text NOT NULL CHECK (source IN ('call', 'audit')),
    source_pos          bigint NOT NULL,
    event_id            text NOT NULL,
    event_type          text NOT NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'success', 'failed')),
    status_code         integer,
    attempts            integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    latest_completed_at timestamptz,
    UNIQUE (webhook_id, source, source_pos)
);
CREATE INDEX webhook_invocations_list ON webhook_invocations (webhook_id, id DESC);
CREATE INDEX webhook_invocations_age ON webhook_invocations (created_at);

CREATE TABLE webhook_attempts (
    id            bigserial PRIMARY KEY,
    invocation_id bigint NOT NULL REFERENCES webhook_invocations (id) ON DELETE CASCADE,
    status        text NOT NULL CHECK (status IN ('success', 'failed')),
    status_code   integer,
    error         text NOT NULL DEFAULT '',
    duration_ms   integer NOT NULL,
    completed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_attempts_invocation ON webhook_attempts (invocation_id, id);

---- create above / drop below ----

DROP TABLE webhook_attempts;
DROP TABLE webhook_invocations;
DROP TABLE webhooks;
