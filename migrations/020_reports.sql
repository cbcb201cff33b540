-- Reports (issue 21): what the call records alone cannot say.
--
-- agent_states is the history of agents' states (available, busy, wrap_up, away, offline), one
-- row per change, written by each node from the ACD's state changes: the time an agent spent
-- logged in and available, on calls and in wrap-up, for occupancy; and, on a wrap_up row, the
-- call the wrap-up followed (the average handle time counts it). A state lasts until the
-- agent's next row. With shared queues every node sees every change: the key keeps one row.
CREATE TABLE agent_states (
    agent_id  bigint NOT NULL,
    since     timestamptz NOT NULL,
    state     text NOT NULL CHECK (state IN ('available', 'busy', 'wrap_up', 'away', 'offline')),
    call_id   text,
    PRIMARY KEY (agent_id, since, state)
);
CREATE INDEX agent_states_call_idx ON agent_states (call_id) WHERE call_id IS NOT NULL;

-- Reports select calls by the time they entered their queue (else started).
CREATE INDEX calls_report_time_idx ON calls ((coalesce(queued_at, started_at))) WHERE ended_at IS NOT NULL;

-- An agent's offers in a period (the agents report's offered).
CREATE INDEX call_events_offered_idx ON call_events (at) WHERE type = 'call.offered';

---- create above / drop below ----

DROP INDEX call_events_offered_idx;
DROP INDEX calls_report_time_idx;
DROP TABLE agent_states;
