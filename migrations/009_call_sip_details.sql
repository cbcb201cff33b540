-- The call record keeps what the SIP layer knows of a call (issue 16): the trunk it used, the
-- SIP Call-ID of each of its legs (the carrier's first), who ended it and how, and the final
-- SIP response of its setup. All NULL (or empty) for calls recorded before, and for calls an
-- outside phone system reports without them.
ALTER TABLE calls
    ADD COLUMN trunk        text,
    ADD COLUMN sip_call_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN hangup_by    text CHECK (hangup_by IN ('caller', 'callee', 'gateway')),
    ADD COLUMN hangup_cause text,
    ADD COLUMN sip_status   integer CHECK (sip_status BETWEEN 100 AND 699),
    ADD COLUMN sip_reason   text;

---- create above / drop below ----

ALTER TABLE calls
    DROP COLUMN sip_reason,
    DROP COLUMN sip_status,
    DROP COLUMN hangup_cause,
    DROP COLUMN hangup_by,
    DROP COLUMN sip_call_ids,
    DROP COLUMN trunk;
