-- Reserved: number 011 belongs to a change on another branch. This file only keeps the
-- numbering without a gap (tern refuses one) until that change is merged, which replaces it.
SELECT 1;

---- create above / drop below ----

SELECT 1;
