//! The audit trail's own SQLite file (`audit.path`, default `audit.db` beside the store): created
//! private (0600 in a 0700 folder, by the store's rules), in WAL mode, its schema migrated in one
//! immediate transaction. The credential store never waits on it, and it never on the store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::segment::{Packer, SEGMENT_ROWS};
use super::AuditError;
use crate::settings::Settings;
use crate::store::files;

/// Forward-only migrations of the audit file; position + 1 is its `user_version`.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/audit/0001_audit_trail.sql"),
    include_str!("../../schema/audit/0002_partial_indexes.sql"),
    include_str!("../../schema/audit/0003_block_index.sql"),
    include_str!("../../schema/audit/0004_segments.sql"),
];

/// The migration that moves the rows into segments (`segments_from_rows`).
const SEGMENTS: usize = 3;

/// How long a writer waits for another (the CLI appending while `serve` flushes).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The audit file the settings name: `audit.path`, or `audit.db` beside `store.path`.
pub fn path_of(settings: &Settings) -> PathBuf {
    match settings.audit.path.as_os_str().is_empty() {
        true => files::folder_of(&settings.store.path).join(files::AUDIT_FILE),
        false => settings.audit.path.clone(),
    }
}

/// Opens the audit file to append to it, creating and migrating it as needed.
pub fn open_for_writing(path: &Path) -> Result<Connection, AuditError> {
    let named = |cause: String| AuditError::Open {
        path: path.to_path_buf(),
        cause,
    };
    let mut warnings = Vec::new();
    files::prepare(path, &mut warnings).map_err(|e| named(e.to_string()))?;
    let mut conn = Connection::open(path).map_err(|e| named(e.to_string()))?;
    configure(&conn).map_err(|e| named(e.to_string()))?;
    migrate(&mut conn).map_err(|e| named(e.to_string()))?;
    files::tighten_files(path, &mut warnings);
    Ok(conn)
}

/// Opens an existing audit file to read it (search, export, verify). Writes nothing, but to a
/// trail of an older schema, which it converts first, as `serve` would (the CLI may be the
/// first of a new version to open it).
pub fn open_for_reading(path: &Path) -> Result<Connection, AuditError> {
    let conn = open_read_only(path)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version == MIGRATIONS.len() as i64 {
        return Ok(conn);
    }
    drop(conn);
    drop(open_for_writing(path)?);
    open_read_only(path)
}

fn open_read_only(path: &Path) -> Result<Connection, AuditError> {
    let named = |cause: String| AuditError::Open {
        path: path.to_path_buf(),
        cause,
    };
    if !path.exists() {
        return Err(named("no such file (nothing was audited yet?)".to_owned()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| named(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| named(e.to_string()))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| named(e.to_string()))?;
    if !(1..=MIGRATIONS.len() as i64).contains(&version) {
        return Err(named(format!(
            "not an audit trail of this relay (schema version {version})"
        )));
    }
    Ok(conn)
}

/// Writes a consistent copy of the audit file at `source` to `dest` (mode 0600, a single file
/// in rollback-journal mode, replaced whole), taken while a server appends to it; returns its
/// head `seq`. The copy verifies on its own (`audit verify` with `audit.path` naming it).
pub fn backup(source: &Path, dest: &Path) -> Result<i64, AuditError> {
    let conn = open_for_reading(source)?;
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let written = write_copy(&conn, &partial).and_then(|head| {
        std::fs::rename(&partial, dest).map_err(|e| AuditError::Open {
            path: dest.to_path_buf(),
            cause: e.to_string(),
        })?;
        Ok(head)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn write_copy(source: &Connection, partial: &Path) -> Result<i64, AuditError> {
    let mut warnings = Vec::new();
    files::prepare(partial, &mut warnings).map_err(|e| AuditError::Open {
        path: partial.to_path_buf(),
        cause: e.to_string(),
    })?;
    let mut copy = Connection::open(partial)?;
    // All pages in one step: one read transaction, so the copy is one moment of the chain.
    rusqlite::backup::Backup::new(source, &mut copy)?.run_to_completion(
        i32::MAX,
        Duration::from_millis(50),
        None,
    )?;
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(super::chain::head(&copy)?.seq)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A new trail's pages are 8 KiB (an existing file keeps its own; SQLite fixes the size when
    // it writes the first page, so this comes first). Measured with `examples/audit_bench`: the
    // writer's CPU per row fell by about a sixth at every batch size against 4 KiB (a row of
    // about 850 bytes, its two index entries and the chain's head touch fewer pages per commit);
    // 16 KiB pages cost more at small batches, each commit writing whole pages it barely changed.
    conn.execute_batch("PRAGMA page_size = 8192;")?;
    // NORMAL in WAL mode: a commit survives the process being killed; only a power cut may lose
    // the last commits, as for the store.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    // Checkpoints every 10 000 WAL pages (a WAL of up to ~80 MB with a new trail's 8 KiB pages):
    // fewer copies of the same pages into the file. The writer appends segments at the end of
    // the table and its indexes, a working set of a few pages, so SQLite's default 2 MiB cache
    // is enough: `examples/audit_bench` measured the same CPU per row with 2 and 32 MiB (32 MiB,
    // which the per-row indexes of the schema before segments needed, held ~30 MB resident).
    conn.execute_batch("PRAGMA cache_size = -2048; PRAGMA wal_autocheckpoint = 10000;")
}

/// Moves the rows of a trail of an older schema into segments, each keeping its hash (an edited
/// row stays as edited, for `verify` to name), drops their table, and indexes every full block
/// again (the index now has statuses and actions). In the migration's transaction.
fn segments_from_rows(tx: &Transaction) -> Result<(), AuditError> {
    let mut packer = Packer::new()?;
    let mut rows = tx.prepare("SELECT seq, at_ms, content, hash FROM audit_rows ORDER BY seq")?;
    let mut rows = rows.query([])?;
    let (mut first, mut lines, mut hashes) = (None, Vec::new(), Vec::new());
    let mut times = (i64::MAX, i64::MIN);
    let mut flush = |first: &mut Option<i64>,
                     lines: &mut Vec<u8>,
                     hashes: &mut Vec<u8>,
                     times: &mut (i64, i64)| {
        if let Some(at) = first.take() {
            packer.insert(tx, at, lines, hashes, *times)?;
        }
        lines.clear();
        hashes.clear();
        *times = (i64::MAX, i64::MIN);
        Ok::<_, AuditError>(())
    };
    while let Some(row) = rows.next()? {
        let (seq, at_ms): (i64, i64) = (row.get(0)?, row.get(1)?);
        let (content, hash): (String, String) = (row.get(2)?, row.get(3)?);
        let mut bytes = [0u8; 32];
        // A hash that is not one (edited) keeps the row's place with one that never matches.
        let _ = hex::decode_to_slice(&hash, &mut bytes);
        if !lines.is_empty() {
            lines.push(b'\n');
        }
        // A content with a line break (edited) would read as two rows: kept as one.
        lines.extend_from_slice(content.replace('\n', " ").as_bytes());
        hashes.extend_from_slice(&bytes);
        times = (times.0.min(at_ms), times.1.max(at_ms));
        first.get_or_insert(seq);
        if hashes.len() == 32 * SEGMENT_ROWS {
            flush(&mut first, &mut lines, &mut hashes, &mut times)?;
        }
    }
    flush(&mut first, &mut lines, &mut hashes, &mut times)?;
    drop(rows);
    tx.execute_batch(
        "DROP TABLE audit_rows; DELETE FROM audit_postings; DELETE FROM audit_blocks;",
    )?;
    let head = super::chain::head(tx)?;
    super::blocks::index_full_blocks(tx, head.seq, None)
}

/// Applies the migrations this file lacks, reading its version inside the transaction so that
/// two processes opening a new file together do not both create it.
fn migrate(conn: &mut Connection) -> Result<(), AuditError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(migration)?;
        if done == SEGMENTS {
            segments_from_rows(&tx)?;
        }
        tx.pragma_update(None, "user_version", done as i64 + 1)?;
    }
    Ok(tx.commit()?)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_audit_file_is_private_and_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("audit.db");
        drop(open_for_writing(&path).unwrap());
        drop(open_for_writing(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let conn = open_for_reading(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_trail_of_the_first_schema_is_read_then_migrated_and_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let act = crate::audit::Record::act(crate::audit::ActorKind::Cli, "key.create");
            crate::audit::tests::append_rows(&conn, &[act]);
        }
        // A reader (the CLI) before `serve` has migrated it: it converts it.
        let conn = open_for_reading(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let report = crate::audit::verify::verify(&conn).unwrap();
        assert_eq!((report.broken, report.rows), (None, 1));
        drop(conn);
        let conn = open_for_writing(&path).unwrap();
        let report = crate::audit::verify::verify(&conn).unwrap();
        assert_eq!((report.broken, report.rows), (None, 1));
    }
}
