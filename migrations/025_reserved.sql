-- Number 025 was given to another change of the same session; this file keeps the sequence
-- without a gap (tern refuses one) until that change lands, which replaces it.
SELECT 1;

---- create above / drop below ----

SELECT 1;
