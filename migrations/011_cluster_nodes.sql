-- Several gateway nodes on one database (issue 19, losing a node). Every node beats in its
-- nodes row (heartbeat_at, database time, so the nodes' clocks do not matter); a node whose
-- beat is older than the configured timeout is lost, and one surviving node closes its open
-- calls (call.ended, cause node_lost), then records that it did (swept_at). A node that comes
-- back beats again (heartbeat_at > swept_at) and is looked after again from then on. A node
-- that stops cleanly sets swept_at to 'infinity' (nothing to close); its next beat clears it.
--
-- A call belongs to the node named by its call.started (the event's "node", set by the
-- gateway; events from outside name none). The partial expression index finds a node's calls
-- without a new column on the hot insert path.
ALTER TABLE nodes
    ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN swept_at     timestamptz;

CREATE INDEX call_events_started_node ON call_events ((body->>'node'), at)
    WHERE type = 'call.started';

---- create above / drop below ----

DROP INDEX call_events_started_node;
ALTER TABLE nodes DROP COLUMN swept_at, DROP COLUMN heartbeat_at;
