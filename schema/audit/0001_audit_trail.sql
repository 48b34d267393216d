-- The audit trail: its own file (audit.db), never the credential store. One row per data-plane
-- request and per administrative act, chained: each row's hash is SHA-256(the previous row's
-- hash || its content), the content being the row's canonical JSON (`content`), which holds every
-- field; the other columns repeat the fields searches filter on, and `verify` checks they agree.

CREATE TABLE audit_rows (
    seq        INTEGER PRIMARY KEY,   -- 1, 2, 3 … with no gap but for pruned rows (audit_anchor)
    at_ms      INTEGER NOT NULL,      -- unix milliseconds
    kind       TEXT NOT NULL CHECK (kind IN ('request', 'admin')),
    action     TEXT NOT NULL,         -- `responses.create`, `key.create`, `admin.refused` …
    tenant_id  TEXT,
    key_id     TEXT,
    model      TEXT,                  -- the model served, else the model asked
    account_id TEXT,
    status     INTEGER,
    request_id TEXT,
    capture_id TEXT,                  -- content capture's sealed record, when one was taken
    content    TEXT NOT NULL,         -- canonical JSON of the whole row, `seq` included
    hash       TEXT NOT NULL          -- hex SHA-256(previous hash || content)
) STRICT;

-- Searches run newest first, filtered by one of these and a time range; the rowid (seq) ends
-- every index, so a page continues from its cursor without sorting.
CREATE INDEX audit_rows_at ON audit_rows (at_ms);
CREATE INDEX audit_rows_tenant ON audit_rows (tenant_id, at_ms) WHERE tenant_id IS NOT NULL;
CREATE INDEX audit_rows_key ON audit_rows (key_id, at_ms) WHERE key_id IS NOT NULL;
CREATE INDEX audit_rows_model ON audit_rows (model, at_ms) WHERE model IS NOT NULL;
CREATE INDEX audit_rows_account ON audit_rows (account_id, at_ms) WHERE account_id IS NOT NULL;
CREATE INDEX audit_rows_status ON audit_rows (status, at_ms);
CREATE INDEX audit_rows_action ON audit_rows (action, at_ms);
CREATE INDEX audit_rows_request ON audit_rows (request_id) WHERE request_id IS NOT NULL;

-- The chain's end, written in the transaction that appends: a tail cut off is told from a
-- chain that simply ends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;

-- The last row retention pruned: verification starts from it.
CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
