//! Backup and restore of the store.
//!
//! A backup is SQLite's online backup of the live database (one step, so one consistent read
//! transaction; writers go on meanwhile under WAL), written to a private file beside the
//! destination, turned into a single self-contained file (rollback journal, not WAL), marked with
//! the master key id it needs, checked (`PRAGMA integrity_check`, the canary opens), synced and
//! renamed into place.
//!
//! A restore holds the store's lock (`lock.rs`) exclusively, so it refuses while a server runs,
//! checks the backup the same way and that the configured key opens it, then replaces the
//! database atomically: the backup copied beside it and synced, the old `-wal`/`-shm` removed (a
//! stale WAL must never be replayed onto another database), renamed over it, the folder synced.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::crypto::sealed_by;
use super::keyring::{canary, CANARY_NAME, META_ROW};
use super::lock::StoreLock;
use super::rekey::forget_handovers;
use super::{files, now_unix, rfc3339, MasterKey, Store, StoreError};

/// `store_meta` names a backup is marked with (plain text: they are not secret).
const BACKUP_KEY_ID: &str = "backup_master_key_id";
const BACKUP_TAKEN_AT: &str = "backup_taken_at";

/// What a backup holds, as its marks and its canary say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The master key id that opens it.
    pub key_id: String,
    /// When it was taken (RFC 3339), if it is marked.
    pub taken_at: Option<String>,
}

impl Store {
    /// Writes a consistent copy of the store to `dest` (mode 0600, replaced atomically if it
    /// exists) and checks it. Safe while a server runs.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let partial = beside(dest, "partial");
        let written = self.write_backup(&partial);
        let info = written.and_then(|info| {
            sync_file(&partial).map_err(|e| io_failure(&partial, &e))?;
            fs::rename(&partial, dest).map_err(|e| io_failure(dest, &e))?;
            sync_folder(dest);
            Ok(info)
        });
        if info.is_err() {
            let _ = fs::remove_file(&partial);
        }
        info
    }

    fn write_backup(&self, partial: &Path) -> Result<BackupInfo, StoreError> {
        create_private(partial).map_err(|e| io_failure(partial, &e))?;
        let source = self.conn()?;
        let mut copy = Connection::open(partial)?;
        // All pages in one step: one read transaction, so the copy is one consistent moment.
        Backup::new(&source, &mut copy)?.run_to_completion(
            i32::MAX,
            Duration::from_millis(50),
            None,
        )?;
        drop(source);
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        let sealed = canary(&copy)?.ok_or_else(|| {
            StoreError::Conflict("the store holds nothing sealed yet: nothing to back up".into())
        })?;
        self.keys.open(&copy, META_ROW, CANARY_NAME, &sealed)?;
        // A handover is the store's key sealed under a retired one: no backup carries it.
        forget_handovers(&copy)?;
        let key_id = sealed_by(&sealed).unwrap_or_default();
        let taken_at = rfc3339(now_unix());
        for (name, value) in [(BACKUP_KEY_ID, &key_id), (BACKUP_TAKEN_AT, &taken_at)] {
            copy.execute(
                "INSERT OR REPLACE INTO store_meta (name, value) VALUES (?1, ?2)",
                params![name, value.as_bytes()],
            )?;
        }
        drop(copy);
        inspect(partial)
    }
}

/// Checks the backup at `path` (it opens read-only, passes `PRAGMA integrity_check`, holds a
/// canary) and says which key it needs.
pub fn inspect(path: &Path) -> Result<BackupInfo, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_a_backup(path, &e.to_string()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| not_a_backup(path, &e.to_string()))?;
    if verdict != "ok" {
        return Err(not_a_backup(
            path,
            &format!("its integrity check says: {verdict}"),
        ));
    }
    // A newer relay's store would be restored whole and then refused at every start.
    super::open::refuse_newer_schema(&conn)?;
    let sealed = canary(&conn)
        .ok()
        .flatten()
        .ok_or_else(|| not_a_backup(path, "it holds no master key canary"))?;
    let taken_at: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM store_meta WHERE name = ?1",
            [BACKUP_TAKEN_AT],
            |row| row.get(0),
        )
        .optional()?;
    Ok(BackupInfo {
        key_id: sealed_by(&sealed).unwrap_or_else(|| "unknown".to_owned()),
        taken_at: taken_at.map(|t| String::from_utf8_lossy(&t).into_owned()),
    })
}

/// Replaces the store at `db` with the backup at `backup`. Refused while a server runs on it,
/// and (unless `force`) when `key` does not open the backup.
pub fn restore(
    db: &Path,
    backup: &Path,
    key: &MasterKey,
    force: bool,
) -> Result<BackupInfo, StoreError> {
    let _lock = StoreLock::for_restore(db)?;
    let info = inspect(backup)?;
    if !force && !opens(backup, key)? {
        return Err(StoreError::Conflict(format!(
            "the backup {} needs master key {}, and the configured key is {}: give the relay \
             that key (the one in use when the backup was taken) and restore again, or add \
             --force to restore it anyway and switch the key before the next start",
            backup.display(),
            info.key_id,
            key.id_hex()
        )));
    }
    checkpoint(db);
    let incoming = beside(db, "restore");
    let replaced = copy_private(backup, &incoming)
        .and_then(|()| remove_companions(db))
        .and_then(|()| fs::rename(&incoming, db));
    if let Err(e) = replaced {
        let _ = fs::remove_file(&incoming);
        return Err(io_failure(db, &e));
    }
    sync_folder(db);
    Ok(info)
}

/// Whether `key` opens the backup's canary.
fn opens(backup: &Path, key: &MasterKey) -> Result<bool, StoreError> {
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let sealed = canary(&conn)?.unwrap_or_default();
    Ok(key.open(META_ROW, CANARY_NAME, &sealed).is_ok())
}

/// Merges the current store's WAL into its file, when it opens, so that removing the WAL loses
/// nothing should the restore stop before its rename. A damaged store is replaced as it is.
fn checkpoint(db: &Path) {
    if db.exists() {
        if let Ok(conn) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

fn remove_companions(db: &Path) -> io::Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match fs::remove_file(PathBuf::from(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A temporary name beside `path`, never one an earlier run left.
fn beside(path: &Path, what: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-{}", uuid::Uuid::new_v4()));
    PathBuf::from(name)
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn copy_private(from: &Path, to: &Path) -> io::Result<()> {
    let mut target = create_private(to)?;
    io::copy(&mut File::open(from)?, &mut target)?;
    target.sync_all()
}

fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Syncs the folder of `path`, so a rename in it survives a power loss (best effort: some file
/// systems cannot sync a folder).
fn sync_folder(path: &Path) {
    if let Ok(folder) = File::open(files::folder_of(path)) {
        let _ = folder.sync_all();
    }
}

fn io_failure(path: &Path, error: &io::Error) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        cause: error.to_string(),
    }
}

fn not_a_backup(path: &Path, why: &str) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        cause: format!("it is not a usable codex-relay backup: {why}"),
    }
}
