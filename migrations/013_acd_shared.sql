-- The ACD shared by the gateway nodes of a cluster (issue 19, cluster-wide queues and agents).
-- Agents' states, the node their page or SIP phone is attached to, their queues, the calls
-- waiting in every queue and their order live here, so that a call waiting on one node is
-- offered to an agent attached to any node, in arrival order across the cluster, to the
-- longest-idle agent of the cluster. Dispatch pairs a waiting call with an agent under row locks
-- (FOR UPDATE SKIP LOCKED) so that two nodes never offer the same call or the same agent, and
-- wakes the nodes with NOTIFY switchboard_acd. Times are the database's (now()), so the nodes'
-- clocks do not matter. Rows are the nodes' live state, not history: a node's start clears what
-- its previous run left, and a lost node's rows are cleared by a survivor.

-- acd_seq orders everything that must grow across the cluster: agents' state changes (seq,
-- which a page uses to keep the newest state), waiting calls' arrival (FIFO) and claims.
CREATE SEQUENCE acd_seq;

CREATE TABLE acd_agents (
    agent_id    bigint PRIMARY KEY,
    email       text NOT NULL DEFAULT '',
    name        text NOT NULL DEFAULT '',
    queues      text[] NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'offline'
                CHECK (state IN ('available', 'busy', 'wrap_up', 'away', 'offline')),
    since       timestamptz NOT NULL DEFAULT now(),
    -- idle_since: when the agent last became available (longest idle first).
    idle_since  timestamptz NOT NULL DEFAULT now(),
    missed      integer NOT NULL DEFAULT 0,
    -- after_state: a state chosen while busy (or while ringing), applied when the call ends.
    after_state text CHECK (after_state IN ('available', 'away', 'offline')),
    -- offering: the call ringing the agent; call_id: the call the agent is on; call_node: the
    -- node that owns that call (or times the agent's wrap-up).
    offering    text,
    call_id     text,
    call_node   text,
    -- page_node / phone_node: where the agent's softphone page's WebSocket and SIP phone's
    -- registration are attached (NULL: nowhere). An offer goes to the page's node, else the
    -- phone's.
    page_node   text,
    phone_node  text,
    seq         bigint NOT NULL DEFAULT nextval('acd_seq')
);

CREATE TABLE acd_waiting (
    call_id     text PRIMARY KEY,
    queue       text NOT NULL,
    node        text NOT NULL,
    seq         bigint NOT NULL DEFAULT nextval('acd_seq'),
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    -- offering: the agent the call is claimed for (NULL: unclaimed); claim_seq numbers the
    -- claim so the owning node carries it out once.
    offering    bigint,
    claim_seq   bigint,
    -- tried: agents who missed the call this round (not offered it again until a retry).
    tried       bigint[] NOT NULL DEFAULT '{}'
);

CREATE INDEX acd_waiting_order ON acd_waiting (seq);
CREATE INDEX acd_waiting_node ON acd_waiting (node);

---- create above / drop below ----

DROP TABLE acd_waiting;
DROP TABLE acd_agents;
DROP SEQUENCE acd_seq;
