//! The hash chain: appending rows so that each commits to its content and to the row before it,
//! and the chain's head and anchor. Every append — the server's writer or a CLI command in
//! another process — runs in one `BEGIN IMMEDIATE` transaction that reads the head inside it,
//! so appends from both processes serialize and never fork the chain.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::blocks;
use super::record::{canonical, Record};
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
    let mut hasher = Sha256::new();
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(previous, &mut bytes) {
        Ok(()) => hasher.update(bytes),
        Err(_) => hasher.update(previous.as_bytes()),
    }
    hasher.update(content.as_bytes());
    hex::encode(hasher.finalize())
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

/// Appends `records` in order, in one immediate transaction; returns the new head.
pub fn append(conn: &mut Connection, records: &[Record]) -> Result<Link, AuditError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = append_in(&tx, records)?;
    tx.commit()?;
    Ok(head)
}

fn append_in(tx: &Transaction, records: &[Record]) -> Result<Link, AuditError> {
    let mut at = head(tx)?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_rows (seq, at_ms, kind, action, tenant_id, key_id, model, account_id,
             status, request_id, capture_id, content, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for record in records {
        let seq = at.seq + 1;
        let content = canonical(seq, record)?;
        let hash = link(&at.hash, &content);
        insert.execute(params![
            seq,
            record.at_ms,
            record.kind.as_str(),
            record.action.as_str(),
            record.tenant_id.as_deref(),
            record.key_id.as_deref(),
            record.model(),
            record.account_id.as_deref(),
            record.status,
            record.request_id.as_deref(),
            record.capture_id.as_deref(),
            content,
            hash,
        ])?;
        at = Link { seq, hash };
    }
    tx.prepare_cached(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![at.seq, at.hash])?;
    // A trail of an older schema (read before `serve` migrates it) has per-row indexes instead.
    if blocks::present(tx)? {
        blocks::index_full_blocks(tx, at.seq)?;
    }
    Ok(at)
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
