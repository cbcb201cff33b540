-- Queue settings managed live (issue 21): a queue's service-level threshold and its callback
-- settings are stored with the queue (roster_queues), so that a queue created or changed
-- through the API (/api/v2/queues) sets them like the others; the configuration file seeds
-- them on the first start.
--
-- service_level_seconds: the reports count a call answered within it as answered in service
-- level; 0 takes the configuration file's value for the queue, else 20.
-- callback_key: the key a waiting caller presses to be called back instead of waiting ('' off);
-- callback_attempts: how many times the caller is dialled before the callback is dropped (0
-- takes the gateway's default, 3); callback_retry_ms: the pause between attempts (0: 60 s).
ALTER TABLE roster_queues
    ADD COLUMN service_level_seconds integer NOT NULL DEFAULT 0 CHECK (service_level_seconds BETWEEN 0 AND 3600),
    ADD COLUMN callback_key text NOT NULL DEFAULT '' CHECK (callback_key ~ '^[0-9*#]?$'),
    ADD COLUMN callback_attempts integer NOT NULL DEFAULT 0 CHECK (callback_attempts BETWEEN 0 AND 10),
    ADD COLUMN callback_retry_ms bigint NOT NULL DEFAULT 0 CHECK (callback_retry_ms BETWEEN 0 AND 86400000);

---- create above / drop below ----

ALTER TABLE roster_queues
    DROP COLUMN callback_retry_ms,
    DROP COLUMN callback_attempts,
    DROP COLUMN callback_key,
    DROP COLUMN service_level_seconds;
