-- The agent page's logins (issue 19): every node of a cluster reads them, so a page whose node
-- is lost reconnects through the HTTP front to another node without logging in again. The
-- session cookie's value is never stored: token_hash is its SHA-256 (a copy of this table
-- does not log anyone in).
--
-- A change of a user's password or role, or their deletion, ends every session of theirs on
-- every node: the trigger below deletes their rows in the same transaction and sends NOTIFY
-- switchboard_page_sessions with the user's id, on which each node closes the agent's open
-- softphone (WebSocket and WebRTC leg). A logout sends the same notice.

CREATE TABLE page_sessions (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX page_sessions_user_idx ON page_sessions (user_id);
CREATE INDEX page_sessions_expires_idx ON page_sessions (expires_at);

CREATE FUNCTION page_sessions_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM page_sessions WHERE user_id = NEW.id;
    PERFORM pg_notify('switchboard_page_sessions', NEW.id::text);
    RETURN NULL;
END;
$$;

-- UPDATE OF lists the columns; WHEN keeps an update that rewrites the same value (a node's
-- start re-seeding an unchanged account) from ending anything.
CREATE TRIGGER users_credentials_end_page_sessions
    AFTER UPDATE OF password_hash, role, deleted_at ON users
    FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION page_sessions_end();

---- create above / drop below ----

DROP TRIGGER users_credentials_end_page_sessions ON users;
DROP FUNCTION page_sessions_end();
DROP TABLE page_sessions;
