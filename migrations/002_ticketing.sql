-- The ticketing core (docs/rules.md PM, UM, TM): users and their phone identities, API tokens,
-- tickets, comments, an audit trail of automatic changes, and the global voice settings.
-- The rules that two racing requests could otherwise break live here, as constraints and
-- triggers, so that no code path can bypass them.

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL CHECK (name <> ''),
    email          text CHECK (email IS NULL OR email <> ''),
    role           text NOT NULL DEFAULT 'end-user' CHECK (role IN ('end-user', 'agent', 'admin')),
    password_hash  text,
    -- PM-3: a placeholder stands for one anonymous call and never matches a later one.
    placeholder    boolean NOT NULL DEFAULT false,
    -- UM-5: a merged user is kept as a redirect to the user it was merged into.
    merged_into_id bigint REFERENCES users (id),
    deleted_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (merged_into_id IS NULL OR merged_into_id <> id),
    -- UM-5: agents and admins are never merged.
    CHECK (merged_into_id IS NULL OR role = 'end-user')
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX users_role_idx ON users (role, id);

-- API tokens are stored as SHA-256 hashes; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Phone identities: value is the normalised (E.164 when parseable) number (PM-10).
CREATE TABLE user_identities (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       text NOT NULL DEFAULT 'phone_number' CHECK (type = 'phone_number'),
    value      text NOT NULL CHECK (value <> ''),
    line_type  text NOT NULL CHECK (line_type IN ('direct', 'shared')),
    is_primary boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- PM-4/PM-6: at most one user owns a number as a direct line.
CREATE UNIQUE INDEX user_identities_one_direct_owner ON user_identities (value) WHERE line_type = 'direct';
-- PM-8: a user holds at most one shared number.
CREATE UNIQUE INDEX user_identities_one_shared_per_user ON user_identities (user_id) WHERE line_type = 'shared';
-- A user holds a number once.
CREATE UNIQUE INDEX user_identities_user_value ON user_identities (user_id, value);
-- One primary identity per user.
CREATE UNIQUE INDEX user_identities_one_primary ON user_identities (user_id) WHERE is_primary;
CREATE INDEX user_identities_value_idx ON user_identities (value);

CREATE TABLE tickets (
    id             bigserial PRIMARY KEY,
    subject        text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'new'
                   CHECK (status IN ('new', 'open', 'pending', 'hold', 'solved', 'closed')),
    requester_id   bigint NOT NULL REFERENCES users (id),
    assignee_id    bigint REFERENCES users (id),
    via_channel    text NOT NULL DEFAULT 'api',
    via_source     text NOT NULL DEFAULT '',
    -- CD-7: the number that created the ticket; display_phone is the one shown (TM-2).
    origin_phone   text,
    display_phone  text,
    tags           text[] NOT NULL DEFAULT '{}',
    -- CF-1/CF-2 call custom fields.
    session_type   text,
    caller_number  text,
    call_duration  bigint,
    wait_time      bigint,
    queue_name     text,
    call_id        text,
    hold_duration  bigint,
    csat           integer,
    merged_into_id bigint REFERENCES tickets (id),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT tickets_solved_needs_assignee CHECK (status <> 'solved' OR assignee_id IS NOT NULL),
    CHECK (merged_into_id IS NULL OR merged_into_id <> id),
    CHECK (merged_into_id IS NULL OR status = 'closed')
);
CREATE INDEX tickets_requester_idx ON tickets (requester_id, id);
CREATE INDEX tickets_call_id_idx ON tickets (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX tickets_merged_into_idx ON tickets (merged_into_id) WHERE merged_into_id IS NOT NULL;

-- The ticket system rules, where no code path can bypass them:
-- a new ticket that gets an assignee becomes open; a ticket never returns to new;
-- a closed ticket is immutable except its tags (SQLSTATE SB409 → HTTP 409), and its requester
-- during a user merge; every requester change is audited with the actor and reason that the
-- transaction set (set_config('switchboard.actor_id' / 'switchboard.reason', ..., true)).
CREATE FUNCTION tickets_system_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = 'closed' THEN
            -- UM-3: a user merge moves every ticket of the merged user, closed ones too.
            IF (NEW.subject, NEW.status,
                CASE WHEN current_setting('switchboard.reason', true) = 'user_merge' THEN OLD.requester_id
                     ELSE NEW.requester_id END,
                NEW.assignee_id, NEW.via_channel, NEW.via_source,
                NEW.origin_phone, NEW.display_phone, NEW.session_type, NEW.caller_number, NEW.call_duration,
                NEW.wait_time, NEW.queue_name, NEW.call_id, NEW.hold_duration, NEW.csat, NEW.merged_into_id)
               IS DISTINCT FROM
               (OLD.subject, OLD.status, OLD.requester_id, OLD.assignee_id, OLD.via_channel, OLD.via_source,
                OLD.origin_phone, OLD.display_phone, OLD.session_type, OLD.caller_number, OLD.call_duration,
                OLD.wait_time, OLD.queue_name, OLD.call_id, OLD.hold_duration, OLD.csat, OLD.merged_into_id)
            THEN
                RAISE EXCEPTION 'ticket % is closed: only its tags can change', OLD.id USING ERRCODE = 'SB409';
            END IF;
        ELSIF NEW.status = 'new' AND OLD.status <> 'new' THEN
            RAISE EXCEPTION 'ticket % cannot return to status new', OLD.id USING ERRCODE = 'SB422';
        END IF;
        IF NEW.requester_id IS DISTINCT FROM OLD.requester_id THEN
            INSERT INTO audits (kind, actor_id, ticket_id, user_id, details)
            VALUES ('requester_changed', nullif(current_setting('switchboard.actor_id', true), '')::bigint,
                    NEW.id, NEW.requester_id,
                    jsonb_build_object('from', OLD.requester_id, 'to', NEW.requester_id,
                                       'reason', coalesce(current_setting('switchboard.reason', true), '')));
        END IF;
        NEW.updated_at := clock_timestamp();
    END IF;
    IF NEW.status = 'new' AND NEW.assignee_id IS NOT NULL THEN
        NEW.status := 'open';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TABLE ticket_comments (
    id                   bigserial PRIMARY KEY,
    ticket_id            bigint NOT NULL REFERENCES tickets (id),
    type                 text NOT NULL DEFAULT 'Comment' CHECK (type IN ('Comment', 'VoiceComment')),
    body                 text NOT NULL DEFAULT '',
    public               boolean NOT NULL DEFAULT true,
    author_id            bigint REFERENCES users (id),
    -- VoiceComment fields (CD-1 … CD-6).
    call_id              text,
    from_number          text,
    to_number            text,
    started_at           timestamptz,
    duration             bigint,
    answered_by_id       bigint REFERENCES users (id),
    location             text,
    recording_id         text,
    recording_url        text,
    recording_deleted_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Comments keep their order: by id within a ticket.
CREATE INDEX ticket_comments_ticket_idx ON ticket_comments (ticket_id, id);
CREATE INDEX ticket_comments_call_idx ON ticket_comments (call_id) WHERE call_id IS NOT NULL;

-- No comment is added to a closed ticket.
CREATE FUNCTION ticket_comments_open_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM tickets WHERE id = NEW.ticket_id) = 'closed' THEN
        RAISE EXCEPTION 'ticket % is closed: no comment can be added', NEW.ticket_id USING ERRCODE = 'SB409';
    END IF;
    RETURN NEW;
END;
$$;

-- Every automatic change: identity removed by PM-9, user merges, ticket merges, requester
-- changes. actor_id is null for the system.
CREATE TABLE audits (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    actor_id   bigint,
    user_id    bigint,
    ticket_id  bigint,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audits_user_idx ON audits (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX audits_ticket_idx ON audits (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE TRIGGER tickets_system_rules BEFORE INSERT OR UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_system_rules();
CREATE TRIGGER ticket_comments_open_ticket BEFORE INSERT ON ticket_comments
    FOR EACH ROW EXECUTE FUNCTION ticket_comments_open_ticket();

-- The global voice settings (docs/rules.md settings) as the JSON of ticketing.Settings.
CREATE TABLE voice_settings (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    settings   jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

---- create above / drop below ----

DROP TABLE voice_settings;
DROP TABLE audits;
DROP TABLE ticket_comments;
DROP FUNCTION ticket_comments_open_ticket();
DROP TABLE tickets;
DROP FUNCTION tickets_system_rules();
DROP TABLE user_identities;
DROP TABLE api_tokens;
DROP TABLE users;
