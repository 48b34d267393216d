-- Bearer tokens of the admin plane. Like API keys, only a hash is kept; the scope says whether
-- the token may change things (write) or only look (read).
CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    prefix     TEXT NOT NULL,                       -- public, for people to recognise a token
    hash       BLOB NOT NULL UNIQUE,                -- SHA-256 of the whole token
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
