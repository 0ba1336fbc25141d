-- OAuth 2.0 tokens issued by the oauth2 plugin on the proxy. They are not
-- configuration (issuing one does not recompile the proxy), so they live in
-- their own table; `body` is the token as JSON, `expires_at` when the record
-- (refresh window included) may be dropped, NULL for never.
CREATE TABLE oauth2_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    body       TEXT    NOT NULL
);
CREATE INDEX oauth2_tokens_expiry ON oauth2_tokens (expires_at);
