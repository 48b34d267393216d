-- Accounts of the pool, their sealed credentials, and the API keys of the data plane.

-- Facts about the store itself, e.g. a sealed canary that proves the master key is the right one.
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,            -- relay's own id (uuid)
    chatgpt_account_id TEXT NOT NULL UNIQUE,        -- sent upstream as ChatGPT-Account-ID
    label              TEXT NOT NULL,
    email              TEXT,                        -- shown masked only
    plan               TEXT,
    is_fedramp         INTEGER NOT NULL DEFAULT 0,
    state              TEXT NOT NULL DEFAULT 'active',
    state_reason       TEXT,
    token_expires_at   INTEGER,                     -- unix seconds, the access token's exp
    last_refresh       INTEGER,                     -- unix seconds
    version            INTEGER NOT NULL DEFAULT 1,  -- bumped on every change the server must see
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- One complete token set per account, each column sealed (XChaCha20-Poly1305, AAD = row + column).
CREATE TABLE account_tokens (
    account_id    TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    token_version INTEGER NOT NULL,
    id_token      BLOB NOT NULL,
    access_token  BLOB NOT NULL,
    refresh_token BLOB NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,                       -- public, for people to recognise a key
    hash       BLOB NOT NULL UNIQUE,                -- SHA-256 of the whole key; the key is never stored
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
