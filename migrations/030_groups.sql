-- Groups (issue 21, teams): Zendesk's groups of agents (GET/POST/PUT/DELETE /api/v2/groups,
-- /api/v2/group_memberships). A supervisor who belongs to one or more groups supervises only
-- the agents of those groups (monitor, whisper, barge, their states, the wallboard); a
-- supervisor in no group supervises every agent, as before this migration. The agent page's
-- Recent calls shows "my team's" calls: those of the agents sharing a group with the agent.
-- A ticket's group_id is kept (Zendesk's field; before, it was accepted and dropped).

CREATE TABLE groups (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (name <> '' AND length(name) <= 255),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    -- Zendesk: a private group's tickets are seen by its members only (not enforced here: no
    -- ticket is restricted by group yet); a private group cannot become public again.
    is_public   boolean NOT NULL DEFAULT true,
    -- The account's default group (at most one).
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX groups_name_key ON groups (lower(name));
CREATE UNIQUE INDEX groups_one_default ON groups (is_default) WHERE is_default;

-- A member is a staff user (agent, supervisor or admin: the store checks it when adding one).
-- is_default: the user's default group (at most one per user; their first membership).
CREATE TABLE group_memberships (
    id         bigserial PRIMARY KEY,
    group_id   bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT group_memberships_user_group UNIQUE (user_id, group_id)
);
CREATE INDEX group_memberships_group ON group_memberships (group_id, user_id);
CREATE UNIQUE INDEX group_memberships_one_default ON group_memberships (user_id) WHERE is_default;

-- A user who stops being staff (made an end user) or is deleted leaves every group, as in
-- Zendesk: a former agent must not keep widening or narrowing anyone's supervision.
CREATE FUNCTION group_memberships_leave() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM group_memberships WHERE user_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_leave_groups AFTER UPDATE OF role, deleted_at ON users FOR EACH ROW
    WHEN (NEW.role = 'end-user' OR NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION group_memberships_leave();

-- A ticket's group; a deleted group leaves its tickets without one.
ALTER TABLE tickets ADD COLUMN group_id bigint REFERENCES groups (id) ON DELETE SET NULL;
CREATE INDEX tickets_group_idx ON tickets (group_id) WHERE group_id IS NOT NULL;

-- Recent calls by agent (the agent page's own and team views).
CREATE INDEX calls_agent_started_idx ON calls (agent_id, started_at DESC, id DESC) WHERE agent_id IS NOT NULL;

---- create above / drop below ----

DROP INDEX calls_agent_started_idx;
ALTER TABLE tickets DROP COLUMN group_id;
DROP TRIGGER users_leave_groups ON users;
DROP FUNCTION group_memberships_leave();
DROP TABLE group_memberships;
DROP TABLE groups;
