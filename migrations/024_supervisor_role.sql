-- A supervisor role of its own (issue 21): a staff user who takes calls like an agent and
-- may supervise calls, read the wallboard and set any agent's state, without the admins'
-- settings, roster, webhooks and tokens. Supervisors log in like agents; a comment of theirs
-- is written by staff (is_staff in the comment_added ticket event).

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('end-user', 'agent', 'supervisor', 'admin'));

CREATE OR REPLACE FUNCTION ticket_events_comment() RETURNS trigger LANGUAGE plpgsql AS $$
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
                'is_staff', coalesce(a.role IN ('agent', 'supervisor', 'admin'), false)))));
    RETURN NULL;
END;
$$;

---- create above / drop below ----

-- Supervisors become agents (they lose the supervisor powers, keep their calls and tickets).
UPDATE users SET role = 'agent' WHERE role = 'supervisor';
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('end-user', 'agent', 'admin'));

CREATE OR REPLACE FUNCTION ticket_events_comment() RETURNS trigger LANGUAGE plpgsql AS $$
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
