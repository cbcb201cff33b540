-- The foundation: a record of which gateway nodes have run against this database.
-- Later migrations add the ticketing core, calls, events and recordings.
CREATE TABLE nodes (
    name        text PRIMARY KEY,
    version     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE nodes;
