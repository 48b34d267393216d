-- Governance: tenants own API keys; keys and tenants carry limits; token usage is counted per
-- day so quotas survive a restart.

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    rpm            INTEGER,                     -- requests per minute; NULL = no tenant limit
    max_concurrent INTEGER,                     -- concurrent requests of all its keys
    daily_tokens   INTEGER,                     -- tokens per UTC day
    monthly_tokens INTEGER,                     -- tokens per UTC calendar month
    hidden_models  TEXT NOT NULL DEFAULT '[]',  -- JSON list of model names its keys do not see
    created_at     INTEGER NOT NULL
) STRICT;

ALTER TABLE api_keys ADD COLUMN tenant_id TEXT REFERENCES tenants(id);
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;          -- unix seconds; NULL = never
ALTER TABLE api_keys ADD COLUMN models TEXT;                 -- JSON allow-list; NULL = every model
ALTER TABLE api_keys ADD COLUMN rpm INTEGER;                 -- NULL = limits.default_key_rpm
ALTER TABLE api_keys ADD COLUMN burst INTEGER;               -- NULL = same as rpm
ALTER TABLE api_keys ADD COLUMN max_concurrent INTEGER;
ALTER TABLE api_keys ADD COLUMN daily_tokens INTEGER;
ALTER TABLE api_keys ADD COLUMN monthly_tokens INTEGER;

-- Usage per subject (a key or a tenant) and UTC day; months are sums of their days.
CREATE TABLE usage_daily (
    scope         TEXT NOT NULL CHECK (scope IN ('key', 'tenant')),
    subject       TEXT NOT NULL,
    day           TEXT NOT NULL,                -- YYYY-MM-DD (UTC)
    requests      INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, subject, day)
) STRICT;
