-- Comment privacy (issue 20): PUT /api/v2/tickets/{id}/comments/{comment_id}/make_private turns
-- a public comment into an internal note, and the webhooks' ticket events say so as Zendesk's
-- do: comment_made_private — and comment_made_public for the other way, which the API does not
-- offer (nor does Zendesk's) but an operator's own SQL may do — with the comment as
-- comment_added carries it and the ticket as its detail. Nothing is written while no webhook is
-- active. A row-level trigger whose WHEN clause skips every other update of a comment (the
-- rules engine's recording links) without calling the function.
CREATE FUNCTION ticket_events_comment_privacy() RETURNS trigger LANGUAGE plpgsql AS $$
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
    INSERT INTO ticket_events (ticket_id, kind, actor_id, detail, event) VALUES (NEW.ticket_id,
        CASE WHEN NEW.public THEN 'comment_made_public' ELSE 'comment_made_private' END, actor,
        ticket_event_detail(t, actor),
        jsonb_build_object('comment', jsonb_build_object(
            'id', NEW.id::text, 'type', NEW.type, 'body', NEW.body, 'is_public', NEW.public,
            'author', jsonb_build_object('id', coalesce(NEW.author_id::text, '-1'), 'name', a.name,
                'is_staff', coalesce(a.role IN ('agent', 'admin'), false)))));
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_events_comment_privacy AFTER UPDATE OF public ON ticket_comments
    FOR EACH ROW WHEN (OLD.public IS DISTINCT FROM NEW.public)
    EXECUTE FUNCTION ticket_events_comment_privacy();

---- create above / drop below ----

DROP TRIGGER ticket_events_comment_privacy ON ticket_comments;
DROP FUNCTION ticket_events_comment_privacy();
