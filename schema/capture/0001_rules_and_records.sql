-- The capture file (capture.db, beside the store): content capture's rules and sealed records.
-- Its own file, so that the credential store never waits on it.

CREATE TABLE capture_rules (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL CHECK (scope IN ('tenant', 'key')),
    subject     TEXT NOT NULL,
    reason      TEXT,
    started_by  TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    stopped_at  INTEGER,
    stopped_by  TEXT
);

-- One captured call. Who and when are in the clear (they are the audit's metadata); the bodies
-- are sealed with the master key, their additional data binding them to the record's id.
CREATE TABLE capture_records (
    id           TEXT PRIMARY KEY,
    rule_id      TEXT NOT NULL REFERENCES capture_rules (id),
    request_id   TEXT NOT NULL,
    captured_at  INTEGER NOT NULL,
    tenant       TEXT,
    key_id       TEXT NOT NULL,
    stream       INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    truncated    INTEGER NOT NULL,
    request      BLOB NOT NULL,
    response     BLOB NOT NULL
);

CREATE INDEX capture_records_by_rule ON capture_records (rule_id, captured_at);
CREATE INDEX capture_records_by_time ON capture_records (captured_at);
