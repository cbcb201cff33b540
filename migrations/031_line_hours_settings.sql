-- A line managed live carries what a line of the configuration file carries (issue 21): its
-- trunk, its opening hours and its ticket settings, beside the number, target, name and
-- language of migration 021. The admin API (/api/v2/lines) validates them with the
-- configuration's own rules before it writes them; these CHECKs only keep the shapes.
--
-- NULL means "not the line's own": the configuration file's line of the same number gives it,
-- as before this migration (a database seeded before 031 keeps working unchanged: its rows have
-- NULL here and the file's trunk, hours and settings still apply by number), else the default
-- (the only trunk; always open; the global ticket settings). A value here wins over the file.
-- The seed from the file writes them for the lines it seeds from now on.

ALTER TABLE roster_lines
    -- trunk: a trunk name of the configuration (letters, digits, '_', '-').
    ADD COLUMN trunk    text  CHECK (trunk ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- hours: {"time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"], ...},
    -- "holidays": ["2026-12-25"], "closed_target": "voicemail"}, as the file's hours.
    ADD COLUMN hours    jsonb CHECK (jsonb_typeof(hours) = 'object' AND hours ? 'weekly'
                                     AND jsonb_typeof(hours -> 'weekly') = 'object'),
    -- settings: the file's lines[].settings overrides ({"abandoned_calls_create_tickets": false,
    -- "ticket_subject": {"inbound": "..."}, ...}); {} overrides nothing.
    ADD COLUMN settings jsonb CHECK (jsonb_typeof(settings) = 'object');

---- create above / drop below ----

ALTER TABLE roster_lines DROP COLUMN settings, DROP COLUMN hours, DROP COLUMN trunk;
