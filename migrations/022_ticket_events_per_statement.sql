-- Ticket throughput (issue 17): the webhooks' ticket events of new tickets and new comments are
-- written by statement-level triggers instead of row-level ones. The rules engine inserts a
-- whole batch of calls' tickets in one statement and their comments in another; a row-level
-- trigger ran a PL/pgSQL function and its "is any webhook active?" query once per ticket and
-- once per comment (three times a call for a new caller, most of the database's nested
-- statements after the foreign-key checks), where one check per statement says the same. What is
-- written is unchanged: nothing while no webhook is active; otherwise one 'created' event per
-- new ticket and one 'comment_added' event per new comment, in the order of their ids, with the
-- ticket as it is at the end of the statement (a row-level AFTER trigger saw the same).
-- Updates keep their row-level trigger: its WHEN clause already skips the engine's writes of
-- call columns without calling any function.
CREATE FUNCTION ticket_events_created() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE status = 'active') THEN
        RETURN NULL;
    END IF;
    actor := nullif(current_setting('switchboard.actor_id', true), '')::bigint;
    INSERT INTO ticket_events (ticket_id, kind, actor_id, detail)
        SELECT n.id, 'created', actor, ticket_event_detail(ROW(n.*)::tickets, actor)
        FROM new_tickets n ORDER BY n.id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION ticket_events_comments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE status = 'active') THEN
        RETURN NULL;
    END IF;
    actor := nullif(current_setting('switchboard.actor_id', true), '')::bigint;
    INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event)
        SELECT n.ticket_id, 'comment_added', actor, ticket_event_detail(t, actor),
            jsonb_build_object('comment', jsonb_build_object(
                'id', n.id::text, 'type', n.type, 'body', n.body, 'is_public', n.public,
                'author', jsonb_build_object('id', coalesce(n.author_id::text, '-1'), 'name', a.name,
                    'is_staff', coalesce(a.role IN ('agent', 'admin'), false))))
        FROM new_comments n
        LEFT JOIN tickets t ON t.id = n.ticket_id
        LEFT JOIN users a ON a.id = n.author_id
        ORDER BY n.id;
    RETURN NULL;
END;
$$;

DROP TRIGGER ticket_events_insert ON tickets;
CREATE TRIGGER ticket_events_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_tickets
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_created();

DROP TRIGGER ticket_events_comment ON ticket_comments;
DROP FUNCTION ticket_events_comment();
CREATE TRIGGER ticket_events_comment AFTER INSERT ON ticket_comments
    REFERENCING NEW TABLE AS new_comments
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_comments();

---- create above / drop below ----

DROP TRIGGER ticket_events_comment ON ticket_comments;
DROP FUNCTION ticket_events_comments();
DROP TRIGGER ticket_events_insert ON tickets;
DROP FUNCTION ticket_events_created();
CREATE TRIGGER ticket_events_insert AFTER INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_events_write();

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
