-- Pending queue callbacks (issue 21): a callback waiting for an agent, or between two attempts,
-- is kept here as well as in the memory of the node that runs it, so that it outlives the node:
-- the node's next start takes it up again (ivr.ACD.ResumeCallbacks), and when the node is lost
-- a surviving node takes it over (ivr.ACD.TakeOverCallbacks, after the sweep that closes the
-- lost node's calls). A row goes when its callback is answered or dropped.
--
-- node: the node running the callback (a node whose row was taken over stops at its next
-- attempt). place: the callback's place in its queue, kept across retries and restarts — with
-- queues shared in the cluster the acd_seq of the caller's original waiting entry, else the
-- order the node gave the call. enqueued_at: when the caller joined the queue. attempt: the
-- attempts made so far.
CREATE TABLE acd_callbacks (
    call_id      text PRIMARY KEY,
    queue        text NOT NULL,
    node         text NOT NULL,
    caller       text NOT NULL,
    caller_name  text NOT NULL DEFAULT '',
    line         text NOT NULL DEFAULT '',
    language     text NOT NULL DEFAULT '',
    menu_path    text NOT NULL DEFAULT '',
    place        bigint NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    attempt      integer NOT NULL DEFAULT 0 CHECK (attempt BETWEEN 0 AND 10),
    requested_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX acd_callbacks_node ON acd_callbacks (node, place);

---- create above / drop below ----

DROP TABLE acd_callbacks;
