-- The SIP dialog state of each answered leg of the calls a node runs (issue 19): Call-ID,
-- tags, URIs, remote target, route set, CSeq, transport and next hop (RFC 3261 §12), as the
-- node's call journal keeps it on its own disk. It is written after the answer, off the call's
-- path (a write that fails or comes late is only a BYE not sent). When a node is lost, the
-- survivor that closes its calls (cause node_lost) reads their legs here and sends each far
-- end a BYE, so carriers and phones stop waiting on a call nobody carries. A leg is one row
-- per save (a call's legs are saved again at each answer: a transfer's new agent); the last
-- row of a (Call-ID, tag) pair counts. Rows of ended calls are deleted by the nodes' watch.
CREATE TABLE call_dialogs (
    id       bigserial PRIMARY KEY,
    call_id  text NOT NULL,
    node     text NOT NULL,
    dialog   jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_dialogs_call_idx ON call_dialogs (call_id);
CREATE INDEX call_dialogs_saved_idx ON call_dialogs (saved_at);

---- create above / drop below ----

DROP TABLE call_dialogs;
