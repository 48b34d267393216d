-- The pool's view of each account: the operator's routing parameters, and the health and quota
-- state the relay learned (kept so that cooldowns and open breakers survive a restart).
-- Times are unix milliseconds. A missing row means defaults and a healthy account.
CREATE TABLE account_pool (
    account_id        TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    priority          INTEGER NOT NULL DEFAULT 0,   -- higher is used first
    weight            INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 1),
    max_in_flight     INTEGER CHECK (max_in_flight IS NULL OR max_in_flight >= 0),
    cooling_until     INTEGER,                      -- set while cooling (429)
    cooling_reason    TEXT,                         -- usage_limit | rate_limited
    rate_limit_streak INTEGER NOT NULL DEFAULT 0,
    breaker_failures  INTEGER NOT NULL DEFAULT 0,   -- consecutive failures while closed
    breaker_open_until INTEGER,                     -- set while the breaker is open
    breaker_openings  INTEGER NOT NULL DEFAULT 0,
    quota             TEXT,                         -- JSON: the last rate-limit snapshot
    state_updated_at  INTEGER
) STRICT;
