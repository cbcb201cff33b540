-- The cluster's internal SIP leg (issue 19, answering across nodes). A call waiting on one node
-- is answered by an agent attached to another through an internal SIP leg between the two: the
-- call's node sends its internal INVITE to the agent's node at the address that node recorded
-- here at its start (cluster.internal_address, "IP:port"; NULL when its internal leg is off).
ALTER TABLE nodes ADD COLUMN internal_sip text;

---- create above / drop below ----

ALTER TABLE nodes DROP COLUMN internal_sip;
