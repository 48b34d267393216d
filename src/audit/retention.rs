//! Retention: rows older than `audit.retention_days` are deleted from the chain's start, and the
//! anchor keeps the `seq` and hash of the last row deleted, so `verify` starts from it and the
//! rows kept still verify; the block index of blocks pruned whole goes with them. Whole segments
//! go; the one the cut falls in is written again with the rows it keeps. Deleted in slices, each
//! its own short transaction, so that appends (the server's writer, a CLI command) never wait
//! long behind a large prune.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::segment::{Packer, Segment, COLUMNS};
use super::AuditError;

/// Segments deleted per transaction (some 6 400 rows).
const SLICE: i64 = 100;

/// Deletes the rows written before `cutoff_ms` (every row up to the last one older than the
/// cutoff that only older rows precede); returns how many.
pub fn prune(conn: &mut Connection, cutoff_ms: i64) -> Result<u64, AuditError> {
    let mut pruned = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(first_kept) = first_kept(&tx, cutoff_ms)? else {
            return Ok(pruned);
        };
        // The last of the next slice of segments wholly before the first row kept.
        let whole: Option<(i64, i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT first_seq, last_seq, hashes FROM (SELECT first_seq, last_seq, hashes
                   FROM audit_segments WHERE last_seq < ?1 ORDER BY first_seq LIMIT ?2)
                 ORDER BY first_seq DESC LIMIT 1",
            )?
            .query_row(params![first_kept, SLICE], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let (upto, hash, deleted) = match whole {
            Some((first, last, hashes)) => {
                let at = usize::try_from(last - first).unwrap_or(usize::MAX);
                let hash = hashes.get(at * 32..at * 32 + 32).map(hex::encode);
                // By `first_seq`, the table's key: segments follow one another.
                let deleted: i64 = tx.query_row(
                    "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM audit_segments
                     WHERE first_seq <= ?1",
                    [first],
                    |row| row.get(0),
                )?;
                tx.execute("DELETE FROM audit_segments WHERE first_seq <= ?1", [first])?;
                (last, hash, deleted)
            }
            None => split(&tx, first_kept)?,
        };
        if deleted == 0 {
            return Ok(pruned);
        }
        super::blocks::prune(&tx, upto)?;
        tx.execute(
            "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![upto, hash.unwrap_or_default()],
        )?;
        tx.commit()?;
        pruned += deleted as u64;
    }
}

/// Writes the segment holding `first_kept` again without the rows before it; returns the last
/// row dropped, its hash and how many were dropped (none when the segment starts there).
fn split(tx: &Transaction, first_kept: i64) -> Result<(i64, Option<String>, i64), AuditError> {
    let Some(segment) = Segment::holding(tx, first_kept)? else {
        return Ok((first_kept - 1, None, 0));
    };
    let dropped = first_kept - segment.first_seq;
    let Some(cut) = usize::try_from(dropped).ok().filter(|cut| *cut > 0) else {
        return Ok((first_kept - 1, None, 0));
    };
    let hash = segment.hash(cut - 1).map(hex::encode);
    let kept: Vec<&str> = segment.text.split('\n').skip(cut).collect();
    let mut times = (i64::MAX, i64::MIN);
    for line in &kept {
        let at_ms = super::segment::fields(line)?.at_ms;
        times = (times.0.min(at_ms), times.1.max(at_ms));
    }
    tx.execute(
        "DELETE FROM audit_segments WHERE first_seq = ?1",
        [segment.first_seq],
    )?;
    let hashes = segment.hashes.get(cut * 32..).unwrap_or_default();
    Packer::new()?.insert(tx, first_kept, kept.join("\n").as_bytes(), hashes, times)?;
    Ok((first_kept - 1, hash, dropped))
}

/// The first row kept: the first row at or after the cutoff (every row after the head when
/// there is none), `None` when nothing is left to prune.
fn first_kept(conn: &Connection, cutoff_ms: i64) -> Result<Option<i64>, AuditError> {
    let first: Option<i64> = conn
        .prepare_cached("SELECT min(first_seq) FROM audit_segments")?
        .query_row([], |row| row.get(0))?;
    let Some(first) = first else {
        return Ok(None);
    };
    let mut later = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_segments WHERE max_at_ms >= ?1 ORDER BY first_seq LIMIT 1"
    ))?;
    let holding = later
        .query_row([cutoff_ms], |row| Ok(Segment::read(row)))
        .optional()?
        .transpose()?;
    let kept = match holding {
        Some(segment) => segment
            .rows()
            .find_map(|row| match row {
                Ok(row) if row.record.at_ms >= cutoff_ms => Some(Ok(row.seq)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .transpose()?
            .unwrap_or(segment.last_seq + 1),
        None => super::chain::head(conn)?.seq + 1,
    };
    Ok((kept > first).then_some(kept))
}
