//! The hash chain: appending rows so that each commits to its content and to the row before it,
//! and the chain's head and anchor. Every append — the server's writer or a CLI command in
//! another process — runs in one `BEGIN IMMEDIATE` transaction that reads the head inside it,
//! so appends from both processes serialize and never fork the chain.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::blocks::{self, BlockIndex};
use std::borrow::Borrow;

use super::canonical::{write_fields, write_place};
use super::prepared::Prepared;
use super::record::Record;
use super::segment::{Packer, SEGMENT_ROWS};
use super::AuditError;

/// The hash before the first row: 32 zero bytes, in hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A place in the chain: a row's `seq` and `hash` (`0` and [`GENESIS`] before the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub hash: String,
}

impl Link {
    pub fn genesis() -> Link {
        Link {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// `SHA-256(previous hash || content)` in hex; the previous hash as its 32 bytes (or, for text
/// that is not 64 hex digits, its text, which then never matches).
pub fn link(previous: &str, content: &str) -> String {
    let hash = Sha256::new()
        .chain_update(seed(previous))
        .chain_update(content.as_bytes())
        .finalize();
    hex::encode(hash)
}

/// The chain's head: the last row appended (genesis for an empty chain).
pub fn head(conn: &Connection) -> rusqlite::Result<Link> {
    read_link(conn, "SELECT seq, hash FROM audit_head WHERE id = 1")
        .map(|link| link.unwrap_or_else(Link::genesis))
}

/// Where verification starts: the last row pruned, else genesis.
pub fn anchor(conn: &Connection) -> rusqlite::Result<Option<Link>> {
    read_link(conn, "SELECT seq, hash FROM audit_anchor WHERE id = 1")
}

fn read_link(conn: &Connection, sql: &str) -> rusqlite::Result<Option<Link>> {
    conn.prepare_cached(sql)?
        .query_row([], |row| {
            Ok(Link {
                seq: row.get(0)?,
                hash: row.get(1)?,
            })
        })
        .optional()
}

/// Appends `records` in order, in one immediate transaction; returns the new head. For a
/// process appending now and then (the CLI); the server's writer keeps an [`Appender`].
pub fn append(conn: &mut Connection, records: &[impl Borrow<Record>]) -> Result<Link, AuditError> {
    let rows: Vec<Prepared> = records
        .iter()
        .map(|record| Prepared::of(record.borrow()))
        .collect();
    Appender::new()?.append(conn, &rows)
}

/// Appends batches: segments compressed with one reused context, and the block index of the
/// block filling built from the rows as they are appended (`blocks.rs`), not read back.
pub struct Appender {
    packer: Packer,
    filling: Option<Filling>,
}

/// The index of the rows of `block` appended so far, up to row `upto`.
struct Filling {
    block: i64,
    upto: i64,
    index: BlockIndex,
}

impl Appender {
    pub fn new() -> Result<Appender, AuditError> {
        Ok(Appender {
            packer: Packer::new()?,
            filling: None,
        })
    }

    /// Appends `rows` in order, in one immediate transaction; returns the new head.
    pub fn append(&mut self, conn: &mut Connection, rows: &[Prepared]) -> Result<Link, AuditError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = self.append_in(&tx, rows)?;
        tx.commit()?;
        Ok(head)
    }

    fn append_in(&mut self, tx: &Transaction, rows: &[Prepared]) -> Result<Link, AuditError> {
        let start = head(tx)?;
        let mut seq = start.seq;
        let mut previous = seed(&start.hash);
        let (mut lines, mut hashes) = (Vec::new(), Vec::new());
        for segment in rows.chunks(SEGMENT_ROWS) {
            let first = seq + 1;
            lines.clear();
            hashes.clear();
            let mut times = (i64::MAX, i64::MIN);
            for row in segment {
                seq += 1;
                if !lines.is_empty() {
                    lines.push(b'\n');
                }
                let line = lines.len();
                write_place(&mut lines, seq);
                write_fields(&mut lines, row);
                let hash = Sha256::new()
                    .chain_update(&previous)
                    .chain_update(&lines[line..])
                    .finalize();
                hashes.extend_from_slice(&hash);
                previous.clear();
                previous.extend_from_slice(&hash);
                let at_ms = row.at_ms();
                times = (times.0.min(at_ms), times.1.max(at_ms));
            }
            self.packer.insert(tx, first, &lines, &hashes, times)?;
        }
        let at = Link {
            seq,
            hash: hex::encode(&previous),
        };
        tx.prepare_cached(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )?
        .execute(params![at.seq, at.hash])?;
        self.index(tx, start.seq, rows)?;
        Ok(at)
    }

    /// Adds the rows appended after row `before` to the block filling, and writes the index of
    /// every block they fill. What it holds counts only while it ends at the head: after another
    /// process appended (or a commit failed) a full block is indexed from its stored rows.
    fn index(
        &mut self,
        tx: &Transaction,
        before: i64,
        rows: &[Prepared],
    ) -> Result<(), AuditError> {
        if self.filling.as_ref().is_some_and(|f| f.upto != before) {
            self.filling = None;
        }
        let mut status = itoa::Buffer::new();
        for (seq, row) in (before + 1..).zip(rows) {
            let block = blocks::block_of(seq);
            if self.filling.is_none() && seq == blocks::first_of(block) {
                self.filling = Some(Filling {
                    block,
                    upto: seq - 1,
                    index: BlockIndex::default(),
                });
            }
            if let Some(filling) = &mut self.filling {
                filling.index.add(seq, row.at_ms(), row.facets(&mut status));
                filling.upto = seq;
            }
            if seq == blocks::last_of(block) {
                let built = self.filling.take().map(|f| (f.block, f.index));
                blocks::index_full_blocks(tx, seq, built)?;
            }
        }
        Ok(())
    }
}

/// What the first row of an append is chained to: the head's 32 bytes (or, for a head that is
/// not 64 hex digits, its text, which then never matches).
fn seed(hash: &str) -> Vec<u8> {
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(hash, &mut bytes) {
        Ok(()) => bytes.to_vec(),
        Err(_) => hash.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_hashes_the_previous_hash_bytes_then_the_content() {
        let first = link(GENESIS, "a");
        let mut hasher = Sha256::new();
        hasher.update([0u8; 32]);
        hasher.update(b"a");
        assert_eq!(first, hex::encode(hasher.finalize()));
        assert_ne!(link(&first, "b"), link(GENESIS, "b"));
        // A previous hash that is not one (edited) is hashed as text, so the link breaks.
        let mut hasher = Sha256::new();
        hasher.update(b"0aff");
        hasher.update(b"a");
        assert_eq!(link("0aff", "a"), hex::encode(hasher.finalize()));
    }
}
