-- Zendesk's fields on users, identities, tickets and comments (issue 20), stored so that a
-- Zendesk API client gets back what it sent, and the job statuses of create_many and
-- create_or_update_many. Fields whose meaning Switchboard does not act on yet (priority, type,
-- due_at, collaborator_ids, user time_zone and locale…) are stored and returned as given
-- (docs/api.md, "Zendesk compatibility").
ALTER TABLE users
    ADD COLUMN external_id text CHECK (external_id IS NULL OR external_id <> ''),
    ADD COLUMN verified    boolean NOT NULL DEFAULT false,
    ADD COLUMN tags        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN time_zone   text,
    ADD COLUMN locale      text,
    ADD COLUMN user_fields jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN notes       text,
    ADD COLUMN details     text;
-- Zendesk: external_id is unique per account (create_or_update matches on it).
CREATE UNIQUE INDEX users_external_id_key ON users (external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
-- The incremental export reads users and tickets in (updated_at, id) order.
CREATE INDEX users_updated_idx ON users (updated_at, id);

ALTER TABLE user_identities
    ADD COLUMN verified   boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT clock_timestamp();
CREATE FUNCTION user_identities_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;
CREATE TRIGGER user_identities_touch BEFORE UPDATE ON user_identities
    FOR EACH ROW EXECUTE FUNCTION user_identities_touch();

ALTER TABLE tickets
    ADD COLUMN priority         text CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    ADD COLUMN type             text CHECK (type IN ('problem', 'incident', 'question', 'task')),
    ADD COLUMN submitter_id     bigint REFERENCES users (id),
    ADD COLUMN external_id      text,
    ADD COLUMN collaborator_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN due_at           timestamptz,
    ADD COLUMN is_public        boolean NOT NULL DEFAULT true;
CREATE INDEX tickets_updated_idx ON tickets (updated_at, id);
CREATE INDEX tickets_external_id_idx ON tickets (external_id) WHERE external_id IS NOT NULL;

-- How a comment came (Zendesk's via.channel; api when null). html_body is not stored: it is
-- made from the plain body, escaped, so that no client's HTML reaches another client.
ALTER TABLE ticket_comments
    ADD COLUMN via_channel text;

-- The job statuses of bulk requests (create_many, create_or_update_many). The work is done by
-- the time the request is answered; the row lets a client poll it as it polls Zendesk's, from
-- any node. Rows older than a day are deleted when a new job is written.
CREATE TABLE job_statuses (
    id         text PRIMARY KEY,
    job_type   text NOT NULL,
    status     text NOT NULL CHECK (status IN ('queued', 'working', 'completed', 'failed', 'killed')),
    total      integer NOT NULL,
    progress   integer NOT NULL,
    message    text,
    results    jsonb NOT NULL DEFAULT '[]',
    actor_id   bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_statuses_created_idx ON job_statuses (created_at);

---- create above / drop below ----

DROP TABLE job_statuses;
ALTER TABLE ticket_comments DROP COLUMN via_channel;
DROP INDEX tickets_external_id_idx;
DROP INDEX tickets_updated_idx;
ALTER TABLE tickets DROP COLUMN is_public, DROP COLUMN due_at, DROP COLUMN collaborator_ids, DROP COLUMN external_id,
    DROP COLUMN submitter_id, DROP COLUMN type, DROP COLUMN priority;
DROP TRIGGER user_identities_touch ON user_identities;
DROP FUNCTION user_identities_touch();
ALTER TABLE user_identities DROP COLUMN updated_at, DROP COLUMN verified;
DROP INDEX users_updated_idx;
DROP INDEX users_external_id_key;
ALTER TABLE users DROP COLUMN details, DROP COLUMN notes, DROP COLUMN user_fields, DROP COLUMN locale,
    DROP COLUMN time_zone, DROP COLUMN tags, DROP COLUMN verified, DROP COLUMN external_id;
