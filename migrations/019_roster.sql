-- Agents and queues managed live (issue 21): PostgreSQL is the source of truth for the queues,
-- their settings, the agents (users with a login who take calls), their SIP phone credentials
-- and their queue memberships with a priority per queue. The admin API (/api/v2/agents,
-- /api/v2/queues, /api/v2/queues/{name}/memberships) changes these rows and ends each change
-- with NOTIFY switchboard_roster; every node LISTENs and applies the new roster at once (and
-- re-reads it periodically, in case a notification was lost with a connection).
--
-- The configuration file's queues and agents seed these tables on the first start that finds
-- roster_seed empty (one node does it, under an advisory lock); later edits of the file are not
-- applied (a node that finds the file differing from the seed it recorded says so in its log).

CREATE TABLE roster_queues (
    name              text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- Durations in milliseconds; 0 takes the gateway's default (ring 15 s, max wait 120 s).
    ring_timeout_ms   bigint NOT NULL DEFAULT 0 CHECK (ring_timeout_ms >= 0),
    max_wait_ms       bigint NOT NULL DEFAULT 0 CHECK (max_wait_ms >= 0),
    wrap_up_ms        bigint NOT NULL DEFAULT 0 CHECK (wrap_up_ms >= 0),
    max_missed_offers integer NOT NULL DEFAULT 0 CHECK (max_missed_offers >= 0),
    announce_position boolean NOT NULL DEFAULT false,
    -- overflow: a target as the configuration writes it ('' voicemail, 'queue:NAME', 'menu:NAME',
    -- 'voicemail', 'hangup', a SIP URI); music: a WAV file on the nodes ('' the built-in music).
    overflow          text NOT NULL DEFAULT '',
    music             text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- An agent is a user (role agent or admin) who takes calls. The SIP phone's secret is kept
-- only as digest HA1s (RFC 7616 §3.4.2, realm "switchboard"): H(sip_username:realm:secret).
CREATE TABLE roster_agents (
    user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sip_username   text CHECK (sip_username ~ '^[^:\s"\\]{1,128}$'),
    ha1_md5        text,
    ha1_sha256     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (sip_username IS NULL OR ha1_md5 IS NOT NULL OR ha1_sha256 IS NOT NULL)
);
CREATE UNIQUE INDEX roster_agents_sip_username ON roster_agents (lower(sip_username));

-- priority: 1 is offered first, 100 last; the longest idle first among equals. position: the
-- order of the agent's queues as the file or the API listed them (an agent's first queue
-- naming an outbound_line gives its default line, OB-7).
CREATE TABLE roster_memberships (
    queue      text NOT NULL REFERENCES roster_queues (name) ON UPDATE CASCADE ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES roster_agents (user_id) ON DELETE CASCADE,
    priority   integer NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 100),
    position   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, user_id)
);
CREATE INDEX roster_memberships_user ON roster_memberships (user_id);

-- One row once the configuration seeded the roster: seed_hash is the digest of the seeded part
-- of the configuration (a node whose file differs logs that its edit is not applied).
CREATE TABLE roster_seed (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    seed_hash  text NOT NULL,
    seeded_at  timestamptz NOT NULL DEFAULT now()
);

-- The shared ACD (migration 013) keeps each agent's priority per queue beside its queues.
ALTER TABLE acd_agents ADD COLUMN priorities jsonb NOT NULL DEFAULT '{}';

---- create above / drop below ----

ALTER TABLE acd_agents DROP COLUMN priorities;
DROP TABLE roster_seed;
DROP TABLE roster_memberships;
DROP TABLE roster_agents;
DROP TABLE roster_queues;
