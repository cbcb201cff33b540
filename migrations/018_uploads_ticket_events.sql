-- Issue 20, second wave: Zendesk's uploads and comment attachments, and the ticket events
-- webhooks deliver.
--
-- Uploads (POST /api/v2/uploads): a file is stored here, in PostgreSQL, under an upload token
-- until a comment names the token (comment.uploads) and takes its files, or until the token
-- expires (an hour, as Zendesk's) and the next upload deletes it. Files live in the database,
-- not on a node's disk, because the nodes of a cluster share the database and nothing else: any
-- node serves any attachment, a comment and its files commit together, and a database backup
-- holds them. Their size is bounded by the API (APIOptions.MaxUploadBytes, 20 MiB by default).
CREATE TABLE uploads (
    token      text PRIMARY KEY,
    created_by bigint REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX uploads_expires_idx ON uploads (expires_at);

-- An attachment belongs to an upload (waiting for a comment) or to a comment, never neither.
CREATE TABLE attachments (
    id           bigserial PRIMARY KEY,
    upload_token text REFERENCES uploads (token) ON DELETE CASCADE,
    comment_id   bigint REFERENCES ticket_comments (id) ON DELETE CASCADE,
    file_name    text NOT NULL CHECK (file_name <> ''),
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    width        integer,
    height       integer,
    content      bytea NOT NULL,
    created_by   bigint REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (upload_token IS NOT NULL OR comment_id IS NOT NULL)
);
CREATE INDEX attachments_upload_idx ON attachments (upload_token) WHERE upload_token IS NOT NULL;
CREATE INDEX attachments_comment_idx ON attachments (comment_id) WHERE comment_id IS NOT NULL;

-- Ticket events (zen:event-type:ticket.created, status_changed, comment_added, …) for
-- webhooks, written by triggers in the transaction of the change, so every writer (the API,
-- the call rules, merges) produces them and none is written for a change rolled back. detail
-- is the ticket after the change in Zendesk's event schema, event what changed. Nothing is
-- written while no webhook is active: a webhook gets the events stored after it was created
-- (or re-activated), as in Zendesk, so a system without webhooks pays nothing. The
-- dispatcher deletes the rows every webhook has passed once they are older than its
-- retention.
CREATE TABLE ticket_events (
    id         bigserial PRIMARY KEY,
    ticket_id  bigint NOT NULL,
    kind       text NOT NULL,
    actor_id   bigint,
    detail     jsonb NOT NULL,
    event      jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ticket_events_created_idx ON ticket_events (created_at);

ALTER TABLE webhooks ADD COLUMN ticket_cursor bigint NOT NULL DEFAULT 0;
ALTER TABLE webhook_invocations DROP CONSTRAINT webhook_invocations_source_check;
ALTER TABLE webhook_invocations ADD CONSTRAINT webhook_invocations_source_check
    CHECK (source IN ('call', 'audit', 'ticket'));

CREATE FUNCTION ticket_event_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- The ticket as Zendesk's ticket events carry it: ids as strings, enums in capitals.
CREATE FUNCTION ticket_event_detail(t tickets, actor bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id::text, 'actor_id', coalesce(actor::text, '-1'), 'subject', t.subject,
        'status', upper(t.status), 'priority', upper(t.priority), 'type', upper(t.type),
        'requester_id', t.requester_id::text, 'assignee_id', t.assignee_id::text,
        'submitter_id', t.submitter_id::text, 'external_id', t.external_id, 'tags', to_jsonb(t.tags),
        'is_public', t.is_public, 'via', jsonb_build_object('channel', t.via_channel),
        'created_at', ticket_event_time(t.created_at), 'updated_at', ticket_event_time(t.updated_at))
$$;

CREATE FUNCTION ticket_events_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor  bigint;
    detail jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE status = 'active') THEN
        RETURN NULL;
    END IF;
    actor := nullif(current_setting('switchboard.actor_id', true), '')::bigint;
    detail := ticket_event_detail(NEW, actor);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail) VALUES (NEW.id, 'created', actor, detail);
        RETURN NULL;
    END IF;
    -- requester_changed and merges are the audit trail's events (webhooks read both).
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'status_changed', actor, detail,
            jsonb_build_object('previous', upper(OLD.status), 'current', upper(NEW.status)));
    END IF;
    IF NEW.assignee_id IS DISTINCT FROM OLD.assignee_id THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'agent_assignment_changed', actor, detail,
            jsonb_build_object('previous', OLD.assignee_id::text, 'current', NEW.assignee_id::text));
    END IF;
    IF NEW.subject IS DISTINCT FROM OLD.subject THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'subject_changed', actor, detail,
            jsonb_build_object('previous', OLD.subject, 'current', NEW.subject));
    END IF;
    IF NEW.priority IS DISTINCT FROM OLD.priority THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'priority_changed', actor, detail,
            jsonb_build_object('previous', upper(OLD.priority), 'current', upper(NEW.priority)));
    END IF;
    IF NEW.type IS DISTINCT FROM OLD.type THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'ticket_type_changed', actor, detail,
            jsonb_build_object('previous', upper(OLD.type), 'current', upper(NEW.type)));
    END IF;
    IF NEW.tags IS DISTINCT FROM OLD.tags THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'tags_changed', actor, detail,
            jsonb_build_object(
                'tags_added', coalesce((SELECT jsonb_agg(x) FROM unnest(NEW.tags) x WHERE NOT x = ANY (OLD.tags)), '[]'),
                'tags_removed', coalesce((SELECT jsonb_agg(x) FROM unnest(OLD.tags) x WHERE NOT x = ANY (NEW.tags)), '[]')));
    END IF;
    IF NEW.external_id IS DISTINCT FROM OLD.external_id THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'external_id_changed', actor, detail,
            jsonb_build_object('previous', OLD.external_id, 'current', NEW.external_id));
    END IF;
    IF NEW.submitter_id IS DISTINCT FROM OLD.submitter_id THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'submitter_changed', actor, detail,
            jsonb_build_object('previous', OLD.submitter_id::text, 'current', NEW.submitter_id::text));
    END IF;
    IF NEW.due_at IS DISTINCT FROM OLD.due_at THEN
        INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.id, 'task_due_at_changed', actor, detail,
            jsonb_build_object('previous', ticket_event_time(OLD.due_at), 'current', ticket_event_time(NEW.due_at)));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_events_insert AFTER INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_events_write();
CREATE TRIGGER ticket_events_update AFTER UPDATE ON tickets FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
        OR OLD.subject IS DISTINCT FROM NEW.subject OR OLD.priority IS DISTINCT FROM NEW.priority
        OR OLD.type IS DISTINCT FROM NEW.type OR OLD.tags IS DISTINCT FROM NEW.tags
        OR OLD.external_id IS DISTINCT FROM NEW.external_id OR OLD.submitter_id IS DISTINCT FROM NEW.submitter_id
        OR OLD.due_at IS DISTINCT FROM NEW.due_at)
    EXECUTE FUNCTION ticket_events_write();

-- comment_added, for every comment (a call's voice comment too), as Zendesk's event writes it.
CREATE FUNCTION ticket_events_comment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor bigint;
    t     tickets;
    a     users;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE status = 'active') THEN
        RETURN NULL;
    END IF;
    actor := nullif(current_setting('switchboard.actor_id', true), '')::bigint;
    SELECT * INTO t FROM tickets WHERE id = NEW.ticket_id;
    SELECT * INTO a FROM users WHERE id = NEW.author_id;
    INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.ticket_id, 'comment_added', actor,
        ticket_event_detail(t, actor),
        jsonb_build_object('comment', jsonb_build_object(
            'id', NEW.id::text, 'type', NEW.type, 'body', NEW.body, 'is_public', NEW.public,
            'author', jsonb_build_object('id', coalesce(NEW.author_id::text, '-1'), 'name', a.name,
                'is_staff', coalesce(a.role IN ('agent', 'admin'), false)))));
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_events_comment AFTER INSERT ON ticket_comments FOR EACH ROW EXECUTE FUNCTION ticket_events_comment();

---- create above / drop below ----

DROP TRIGGER ticket_events_comment ON ticket_comments;
DROP FUNCTION ticket_events_comment();
DROP TRIGGER ticket_events_update ON tickets;
DROP TRIGGER ticket_events_insert ON tickets;
DROP FUNCTION ticket_events_write();
DROP FUNCTION ticket_event_detail(tickets, bigint);
DROP FUNCTION ticket_event_time(timestamptz);
DELETE FROM webhook_invocations WHERE source = 'ticket';
ALTER TABLE webhook_invocations DROP CONSTRAINT webhook_invocations_source_check;
ALTER TABLE webhook_invocations ADD CONSTRAINT webhook_invocations_source_check CHECK (source IN ('call', 'audit'));
ALTER TABLE webhooks DROP COLUMN ticket_cursor;
DROP TABLE ticket_events;
DROP TABLE attachments;
DROP TABLE uploads;
