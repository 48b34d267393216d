-- The rows move into segments (`src/audit/segment.rs`): up to 64 consecutive rows of one append
-- in one row of this table, their canonical JSON lines compressed together (zstd) beside their
-- hashes, 32 bytes each. Every row keeps its hash, so `verify` still names the first row changed
-- and a trail of the older schema converts with every hash as it was. One insert and a few pages
-- a segment rather than a row, its index entries and their pages a row: the writer's cost per
-- row fell by about half. The relay moves the rows of `audit_rows` here and drops it, in the
-- transaction that applies this migration, then indexes every full block again: the block index
-- now also holds the statuses and actions other than 200 and `responses.create`, so the indexes
-- on `audit_rows` go with it.

CREATE TABLE audit_segments (
    first_seq INTEGER PRIMARY KEY,   -- its first row's seq; the next rows follow, one a line
    last_seq  INTEGER NOT NULL,      -- its last row's seq
    min_at_ms INTEGER NOT NULL,      -- its rows' earliest and latest times
    max_at_ms INTEGER NOT NULL,
    hashes    BLOB NOT NULL,         -- each row's SHA-256(previous hash || its line), in order
    lines     BLOB NOT NULL          -- zstd of the rows' canonical JSON, one a line
) STRICT;

-- A search by time reads segments latest first, as it reads blocks (`0003_…`). The earliest time
-- is in the index too: a search of a past range (or a page deep behind a cursor) passes over the
-- later segments in the index alone, without reading each one's row.
CREATE INDEX audit_segments_latest ON audit_segments (max_at_ms, min_at_ms);
