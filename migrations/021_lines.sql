-- Lines managed live (issue 21): PostgreSQL is the source of truth for the lines — the dialled
-- numbers (DIDs) and where their calls go. The admin API (/api/v2/lines) changes these rows and
-- ends each change with NOTIFY switchboard_roster; every node LISTENs, re-reads the roster with
-- its lines and swaps the SIP server's line table at once (a call already running keeps its
-- line).
--
-- The configuration file's lines seed this table on the first start that finds roster_lines_seed
-- empty (one node does it, under the roster's advisory lock); later edits of the file's lines are
-- not applied (a node whose file differs from the seed it recorded says so in its log). Opening
-- hours, the trunk and per-line ticket settings stay the file's, by number.

CREATE TABLE roster_lines (
    -- number: E.164 as the gateway normalises it ('+' and 2 to 15 digits).
    number     text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    -- target: as the configuration writes it: 'queue:NAME', 'menu:NAME' (a menu of the
    -- configuration), 'voicemail', 'hangup' or a SIP URI.
    target     text NOT NULL CHECK (target <> '' AND length(target) <= 512),
    name       text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    language   text NOT NULL DEFAULT '' CHECK (language ~ '^([A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)?$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row once the configuration seeded the lines (apart from roster_seed: a database seeded
-- with queues and agents before this migration seeds its lines on its next start).
CREATE TABLE roster_lines_seed (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    seed_hash  text NOT NULL,
    seeded_at  timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE roster_lines_seed;
DROP TABLE roster_lines;
