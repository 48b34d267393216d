//! The search index of the filters, built in bulk: once a block of [`BLOCK_ROWS`] rows is full,
//! which rows each value has (`schema/audit/0003_block_index.sql`) — tenant, key, model and
//! account, and the statuses and actions other than the common ones (200, `responses.create`),
//! which few rows have. A per-row index on each of them cost a dirty page per value per batch;
//! this costs a few rows per block, appended at the end of two small tables. The writer builds a
//! block's index as it appends its rows (`chain.rs`); rows of the block not yet full are found by
//! reading them.
//!
//! The index is derived from the rows, so `verify` rebuilds each block's and compares: an index
//! edited to hide rows from searches is named like an edited row.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use rusqlite::{params, Connection, OptionalExtension};

use super::record::Record;
use super::segment::{fields, Segment};
use super::AuditError;

/// Rows per block; a block's places fit in 16 bits.
pub const BLOCK_ROWS: i64 = 1024;

/// The block a row falls in.
pub fn block_of(seq: i64) -> i64 {
    (seq - 1).div_euclid(BLOCK_ROWS)
}

/// The first row of a block.
pub fn first_of(block: i64) -> i64 {
    block * BLOCK_ROWS + 1
}

/// The last row of a block.
pub fn last_of(block: i64) -> i64 {
    first_of(block + 1) - 1
}

/// A filter's value as the index names it: `t:`, `k:`, `m:`, `a:`, `s:` (status) or `x:`
/// (action), then the value.
pub fn facet(prefix: char, value: &str) -> String {
    let mut facet = String::with_capacity(value.len() + 2);
    write_facet(&mut facet, prefix, value);
    facet
}

/// Writes the facet of `value` into `facet`, replacing what it held.
fn write_facet(facet: &mut String, prefix: char, value: &str) {
    facet.clear();
    facet.extend([prefix, ':']);
    facet.push_str(value);
}

/// One block's index: its rows' time range and which rows each value has.
#[derive(Debug, Default)]
pub struct BlockIndex {
    rows: u32,
    min_at_ms: i64,
    max_at_ms: i64,
    /// Facet → the rows' places in the block, 16-bit little-endian, ascending. Hashed, not
    /// ordered: an ordered map compares strings about ten times a lookup, four lookups a row;
    /// the facets are sorted once, when the block is written.
    postings: HashMap<String, Vec<u8>, FixedState>,
    /// The facet being looked up: most values repeat within a block, and a lookup through this
    /// allocates nothing.
    scratch: String,
}

impl BlockIndex {
    /// Adds row `seq` (rows come in ascending order) with its time and its filters' values
    /// ([`facets`]; the writer has them from a prepared row).
    pub fn add(&mut self, seq: i64, at_ms: i64, values: [(char, Option<&str>); FACETS]) {
        (self.min_at_ms, self.max_at_ms) = match self.rows {
            0 => (at_ms, at_ms),
            _ => (self.min_at_ms.min(at_ms), self.max_at_ms.max(at_ms)),
        };
        self.rows += 1;
        let place = ((seq - 1).rem_euclid(BLOCK_ROWS) as u16).to_le_bytes();
        for (prefix, value) in values {
            let Some(value) = value else { continue };
            write_facet(&mut self.scratch, prefix, value);
            match self.postings.get_mut(self.scratch.as_str()) {
                Some(rows) => rows.extend_from_slice(&place),
                None => {
                    self.postings.insert(self.scratch.clone(), place.to_vec());
                }
            }
        }
    }

    /// Adds a row as its sealed record says.
    pub fn add_record(&mut self, seq: i64, record: &Record) {
        let mut status = itoa::Buffer::new();
        self.add(seq, record.at_ms, facets(record, &mut status));
    }
}

/// How many values a row is filed under at most, and their prefixes, in order.
pub const FACETS: usize = 6;
pub const FACET_PREFIXES: [char; FACETS] = ['t', 'k', 'm', 'a', 's', 'x'];

/// The values `record` is filed under, with their prefixes ([`FACET_PREFIXES`]): [`facets_of`]
/// its tenant, key, model and account, status and action.
pub fn facets<'a>(
    record: &'a Record,
    status: &'a mut itoa::Buffer,
) -> [(char, Option<&'a str>); FACETS] {
    let values = [
        record.tenant_id.as_deref(),
        record.key_id.as_deref(),
        record.model(),
        record.account_id.as_deref(),
    ];
    facets_of(values, record.status, &record.action, status)
}

/// The values a row is filed under, with their prefixes ([`FACET_PREFIXES`]): its tenant, key,
/// model and account (`values`), and its status and action unless they are the common ones. A
/// status is written as text into `status`.
pub fn facets_of<'a>(
    values: [Option<&'a str>; 4],
    code: Option<u16>,
    action: &'a str,
    status: &'a mut itoa::Buffer,
) -> [(char, Option<&'a str>); FACETS] {
    let status = code
        .filter(|code| !common_status(*code))
        .map(|code| status.format(code));
    let action = Some(action).filter(|action| !common_action(action));
    let [tenant, key, model, account] = values;
    let values = [tenant, key, model, account, status, action];
    std::array::from_fn(|i| (FACET_PREFIXES[i], values[i]))
}

/// The status most rows have, left out of the index: a search for it reads rows in time order,
/// nearly all of which match.
pub fn common_status(status: u16) -> bool {
    status == 200
}

/// The action most rows have, left out of the index like the common status.
pub fn common_action(action: &str) -> bool {
    action == "responses.create"
}

/// The rows of `block` that `rows` (a posting) names, ascending.
pub fn seqs(block: i64, rows: &[u8]) -> Vec<i64> {
    let first = first_of(block);
    rows.chunks_exact(2)
        .map(|place| first + i64::from(u16::from_le_bytes([place[0], place[1]])))
        .collect()
}

/// The next block to index: after the last one indexed, or the one the chain's anchor is in
/// (blocks retention pruned whole are gone, but the newest one indexed is always kept).
fn next_block(conn: &Connection) -> rusqlite::Result<i64> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(block) FROM audit_blocks")?
        .query_row([], |row| row.get(0))?;
    match last {
        Some(block) => Ok(block + 1),
        None => {
            let anchor: Option<i64> = conn
                .prepare_cached("SELECT seq FROM audit_anchor WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()?;
            Ok(anchor.map_or(0, |seq| seq.div_euclid(BLOCK_ROWS)))
        }
    }
}

/// The first row no block index covers: searches read it and the rows after it one by one.
pub fn unindexed_from(conn: &Connection) -> rusqlite::Result<i64> {
    next_block(conn).map(first_of)
}

/// Indexes every block that is full up to `head_seq` and not indexed yet, in the transaction
/// that appended the rows, so a block is indexed exactly when its last row lands. `built` is a
/// block's index the writer built as it appended the rows; any other block is read back.
pub fn index_full_blocks(
    conn: &Connection,
    head_seq: i64,
    mut built: Option<(i64, BlockIndex)>,
) -> Result<(), AuditError> {
    let mut block = next_block(conn)?;
    while last_of(block) <= head_seq {
        let index = match built.take() {
            Some((at, index)) if at == block => index,
            _ => build(conn, block)?,
        };
        write(conn, block, &index)?;
        block += 1;
    }
    Ok(())
}

/// A block's index, built from its stored rows.
fn build(conn: &Connection, block: i64) -> Result<BlockIndex, AuditError> {
    let mut index = BlockIndex::default();
    let mut seq = first_of(block);
    while seq <= last_of(block) {
        let Some(segment) = Segment::holding(conn, seq)? else {
            // Rows pruned (the anchor's block) or missing: the block is indexed as it is.
            match next_stored(conn, seq)? {
                Some(next) => {
                    seq = next;
                    continue;
                }
                None => break,
            }
        };
        for (at, line) in segment
            .lines()
            .filter(|(at, _)| (seq..=last_of(block)).contains(at))
        {
            index.add_record(at, &fields(line)?);
        }
        seq = segment.last_seq + 1;
    }
    Ok(index)
}

/// The first row stored after `seq`.
fn next_stored(conn: &Connection, seq: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT min(first_seq) FROM audit_segments WHERE first_seq > ?1")?
        .query_row([seq], |row| row.get(0))
}

fn write(conn: &Connection, block: i64, index: &BlockIndex) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_blocks (block, min_at_ms, max_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![block, index.min_at_ms, index.max_at_ms])?;
    let mut posting =
        conn.prepare_cached("INSERT INTO audit_postings (block, facet, rows) VALUES (?1, ?2, ?3)")?;
    // In key order: every insert lands at the end of the table.
    let mut postings: Vec<(&String, &Vec<u8>)> = index.postings.iter().collect();
    postings.sort_unstable_by_key(|(facet, _)| *facet);
    for (facet, rows) in postings {
        posting.execute(params![block, facet, rows])?;
    }
    Ok(())
}

/// The index stored for `block`, if it was indexed.
pub fn stored(conn: &Connection, block: i64) -> rusqlite::Result<Option<BlockIndex>> {
    let range: Option<(i64, i64)> = conn
        .prepare_cached("SELECT min_at_ms, max_at_ms FROM audit_blocks WHERE block = ?1")?
        .query_row([block], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((min_at_ms, max_at_ms)) = range else {
        return Ok(None);
    };
    let mut postings =
        conn.prepare_cached("SELECT facet, rows FROM audit_postings WHERE block = ?1")?;
    let postings = postings
        .query_map([block], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(BlockIndex {
        min_at_ms,
        max_at_ms,
        postings,
        ..BlockIndex::default()
    }))
}

/// Whether `built` (from the rows) and `stored` say the same.
pub fn agree(built: &BlockIndex, stored: &BlockIndex) -> bool {
    (&built.postings, built.min_at_ms, built.max_at_ms)
        == (&stored.postings, stored.min_at_ms, stored.max_at_ms)
}

/// The rows of `block` having `facet`, ascending (none when the block lacks it).
pub fn posting(conn: &Connection, block: i64, facet: &str) -> rusqlite::Result<Vec<i64>> {
    let rows: Option<Vec<u8>> = conn
        .prepare_cached("SELECT rows FROM audit_postings WHERE block = ?1 AND facet = ?2")?
        .query_row(params![block, facet], |row| row.get(0))
        .optional()?;
    Ok(rows.map_or_else(Vec::new, |rows| seqs(block, &rows)))
}

/// Drops the index of blocks whose every row was pruned (rows up to `upto`), keeping the newest
/// block's time range so the next block to index stays known.
pub fn prune(conn: &Connection, upto: i64) -> rusqlite::Result<()> {
    let gone = block_of(upto + 1);
    conn.execute("DELETE FROM audit_postings WHERE block < ?1", [gone])?;
    conn.execute(
        "DELETE FROM audit_blocks WHERE block < ?1
           AND block < (SELECT max(block) FROM audit_blocks)",
        [gone],
    )?;
    Ok(())
}
