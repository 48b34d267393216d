//! Retention: rows older than `audit.retention_days` are deleted from the chain's start, and the
//! anchor keeps the `seq` and hash of the last row deleted, so `verify` starts from it and the
//! rows kept still verify; the block index of blocks pruned whole goes with them. Deleted in
//! slices, each its own short transaction, so that appends (the server's writer, a CLI command)
//! never wait long behind a large prune.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::AuditError;

/// Rows deleted per transaction.
const SLICE: i64 = 5_000;

/// Deletes the rows written before `cutoff_ms` (every row up to the last one older than the
/// cutoff that only older rows precede); returns how many.
pub fn prune(conn: &mut Connection, cutoff_ms: i64) -> Result<u64, AuditError> {
    let mut pruned = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last = last_prunable(&tx, cutoff_ms)?;
        let Some(last) = last else {
            return Ok(pruned);
        };
        let first: i64 = tx.query_row("SELECT min(seq) FROM audit_rows", [], |row| row.get(0))?;
        let upto = last.min(first + SLICE - 1);
        let hash: String = tx.query_row(
            "SELECT hash FROM audit_rows WHERE seq = ?1",
            [upto],
            |row| row.get(0),
        )?;
        let deleted = tx.execute("DELETE FROM audit_rows WHERE seq <= ?1", [upto])?;
        super::blocks::prune(&tx, upto)?;
        tx.execute(
            "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![upto, hash],
        )?;
        tx.commit()?;
        pruned += deleted as u64;
    }
}

/// The last row of the chain's old start: rows before the first row at or after the cutoff.
fn last_prunable(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<Option<i64>> {
    let first_kept: Option<i64> = conn
        .query_row(
            "SELECT seq FROM audit_rows WHERE at_ms >= ?1 ORDER BY seq LIMIT 1",
            [cutoff_ms],
            |row| row.get(0),
        )
        .optional()?;
    match first_kept {
        Some(seq) => conn.query_row(
            "SELECT max(seq) FROM audit_rows WHERE seq < ?1",
            [seq],
            |row| row.get(0),
        ),
        None => conn.query_row("SELECT max(seq) FROM audit_rows", [], |row| row.get(0)),
    }
}
