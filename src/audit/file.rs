//! The audit trail's own SQLite file (`audit.path`, default `audit.db` beside the store): created
//! private (0600 in a 0700 folder, by the store's rules), in WAL mode, its schema migrated in one
//! immediate transaction. The credential store never waits on it, and it never on the store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::AuditError;
use crate::settings::Settings;
use crate::store::files;

/// Forward-only migrations of the audit file; position + 1 is its `user_version`.
const MIGRATIONS: &[&str] = &[include_str!("../../schema/audit/0001_audit_trail.sql")];

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

/// Opens an existing audit file to read it (search, export, verify); writes nothing.
pub fn open_for_reading(path: &Path) -> Result<Connection, AuditError> {
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
    if version != MIGRATIONS.len() as i64 {
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
    // NORMAL in WAL mode: a commit survives the process being killed; only a power cut may lose
    // the last commits, as for the store.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
}

/// Applies the migrations this file lacks, reading its version inside the transaction so that
/// two processes opening a new file together do not both create it.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", done as i64 + 1)?;
    }
    tx.commit()
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
}
