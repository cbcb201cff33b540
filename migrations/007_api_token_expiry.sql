-- API tokens expire and can be listed and revoked (issue 14, item 6). expires_at NULL is a token
-- made before this migration: it never expires until revoked (docs/OPERATIONS.md tells how to
-- list and revoke them). A revoked token is deleted: its hash is useless to keep.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);

---- create above / drop below ----

DROP INDEX api_tokens_user_idx;
ALTER TABLE api_tokens DROP COLUMN expires_at;
