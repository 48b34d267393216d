-- The four filters whose values are many and arrive in no order (tenant, key, model, account)
-- leave the per-row indexes: each batch dirtied one leaf page per value it held, in every one of
-- them, and SQLite writes every dirty page to the WAL at each commit — most of the writer's cost.
-- Instead the rows are indexed in bulk, a block of 1024 at a time, once the block is full
-- (`src/audit/blocks.rs`): which rows of the block each value has. Both tables grow at their
-- end only. Rows of the block not yet full are found by reading them (at most 1023).
--
-- The time, request-id, status and action indexes stay: the first two grow at their end (the
-- relay's request ids are time-ordered), the last two hold only the rare rows (`0002_…`).

DROP INDEX audit_rows_tenant;
DROP INDEX audit_rows_key;
DROP INDEX audit_rows_model;
DROP INDEX audit_rows_account;

-- One row per indexed block: block `b` holds the rows with `seq` from b*1024 + 1 to
-- (b+1)*1024. Its times bound the rows' `at_ms`, which a request row takes from its start and so
-- do not follow `seq`: a search newest first reads blocks in order of their latest time.
CREATE TABLE audit_blocks (
    block     INTEGER PRIMARY KEY,
    min_at_ms INTEGER NOT NULL,
    max_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_blocks_latest ON audit_blocks (max_at_ms);

-- Which rows of a block have a value: `facet` is `t:` tenant, `k:` key, `m:` model (served, else
-- asked) or `a:` account, then the value; `rows` the rows' places in the block (seq - b*1024 - 1)
-- as 16-bit little-endian numbers, ascending.
CREATE TABLE audit_postings (
    block INTEGER NOT NULL,
    facet TEXT NOT NULL,
    rows  BLOB NOT NULL,
    PRIMARY KEY (block, facet)
) STRICT, WITHOUT ROWID;
