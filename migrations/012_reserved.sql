-- Placeholder for migration 012, which another change of this release adds; it is here only
-- so that 013 applies (tern refuses a gap). Replaced by the real 012 when both are merged.
SELECT 1;

---- create above / drop below ----

SELECT 1;
