//! The store's checks: it opens and SQLite finds it intact (`store`), the master key opens its
//! canary (`master_key`), and its folder and files are private (`file_modes`, by the rules of
//! `store::files`). All read-only: nothing is migrated, tightened or generated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Finding;
use crate::store::files::{key_file_of, open_mode, store_paths};
use crate::store::{sealing_key_id, KeySource, MasterKey, Store, StoreError};
use crate::store::{MASTER_KEY_COMMAND_ENV, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};

const RESTORE: &str = "restore the store from a backup, or move it away to start afresh (the \
                       accounts must then be imported again)";

/// Adds the `store`, `master_key` and `file_modes` findings; returns the store opened read-only
/// when the key opens it (the later checks read it).
pub(super) fn checks(
    db: &Path,
    key_command_timeout: Duration,
    findings: &mut Vec<Finding>,
) -> Option<Store> {
    let opened = open(db, key_command_timeout, findings);
    findings.push(file_modes(db));
    opened
}

fn open(db: &Path, key_command_timeout: Duration, findings: &mut Vec<Finding>) -> Option<Store> {
    if !db.exists() {
        findings.push(Finding::warn(
            "store",
            format!("no store at {} yet", db.display()),
            "the first command that writes it creates it (`codex-relay account import`, \
             `key create`, `serve`); if one should be there, check `store.path`",
        ));
        return None;
    }
    findings.push(match integrity(db) {
        Ok(()) => Finding::ok(
            "store",
            format!("{} opens and passes SQLite's integrity check", db.display()),
        ),
        Err(problem) => Finding::fail("store", format!("{}: {problem}", db.display()), RESTORE),
    });
    let (key, source) = match resolve_key(db, key_command_timeout) {
        Ok(Some(resolved)) => resolved,
        Ok(None) => {
            findings.push(Finding::ok(
                "master_key",
                "the store seals nothing yet; a master key is generated beside it at the first start",
            ));
            // Nothing sealed: any key opens it, for the checks that read it.
            return Store::open_read_only(db, 1, MasterKey::generate()).ok();
        }
        Err(finding) => {
            findings.push(finding);
            return None;
        }
    };
    let id = key.id_hex();
    match Store::open_read_only(db, 1, key) {
        Ok(store) => {
            findings.push(Finding::ok(
                "master_key",
                format!("key {id} ({}) opens the store", describe(&source)),
            ));
            Some(store)
        }
        Err(e) => {
            findings.push(refused(e));
            None
        }
    }
}

/// `PRAGMA integrity_check` on a read-only connection of its own: it needs no key.
fn integrity(db: &Path) -> Result<(), String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(|e| e.to_string())?;
    let mut statement = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| e.to_string())?;
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    match rows.as_slice() {
        [only] if only == "ok" => Ok(()),
        problems => Err(format!(
            "SQLite's integrity check found problems: {}",
            problems
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// The master key as `serve` would find it, without ever generating one: `None` when the store
/// seals nothing and no key is configured (the first start generates it).
fn resolve_key(
    db: &Path,
    key_command_timeout: Duration,
) -> Result<Option<(MasterKey, KeySource)>, Finding> {
    let sealed =
        sealing_key_id(db).map_err(|e| Finding::fail("master_key", e.to_string(), RESTORE))?;
    let configured = std::env::var_os(MASTER_KEY_ENV).is_some()
        || std::env::var_os(MASTER_KEY_FILE_ENV).is_some()
        || std::env::var_os(MASTER_KEY_COMMAND_ENV).is_some()
        || key_file_of(db).exists();
    if sealed.is_none() && !configured {
        return Ok(None);
    }
    MasterKey::resolve(db, sealed.as_deref(), key_command_timeout)
        .map(Some)
        .map_err(|e| Finding::fail("master_key", e.to_string(), KEY_HINT))
}

const KEY_HINT: &str = "point CODEX_RELAY_MASTER_KEY_FILE (or CODEX_RELAY_MASTER_KEY) at the key \
                        the store was sealed with, or restore master.key beside the store from \
                        your backup";

fn refused(error: StoreError) -> Finding {
    match error {
        StoreError::WrongMasterKey { .. } => {
            Finding::fail("master_key", error.to_string(), KEY_HINT)
        }
        StoreError::Outdated { .. } => Finding::warn(
            "store",
            error.to_string(),
            "start `codex-relay serve` with this build once: it upgrades the store",
        ),
        other => Finding::fail("store", other.to_string(), RESTORE),
    }
}

fn describe(source: &KeySource) -> String {
    match source {
        KeySource::Environment => format!("from {MASTER_KEY_ENV}"),
        KeySource::Command => format!("from the command {MASTER_KEY_COMMAND_ENV} names"),
        KeySource::File(path) | KeySource::Generated(path) => {
            format!("from {}", path.display())
        }
    }
}

/// The store's files and the key file must be private (0600): a file open to others fails. Its
/// folder should be (0700): one open to others only warns, as the relay itself only warns.
fn file_modes(db: &Path) -> Finding {
    let (folder, mut files) = store_paths(db);
    // The key file `CODEX_RELAY_MASTER_KEY_FILE` names, and the one beside the store.
    files.extend(std::env::var_os(MASTER_KEY_FILE_ENV).map(PathBuf::from));
    files.push(key_file_of(db));
    files.dedup();
    let open: Vec<(PathBuf, u32)> = files
        .into_iter()
        .filter_map(|path| open_mode(&path).map(|mode| (path, mode)))
        .collect();
    if !open.is_empty() {
        let listed = open
            .iter()
            .map(|(path, mode)| format!("{} (mode {mode:04o})", path.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let paths = open
            .iter()
            .map(|(path, _)| path.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        return Finding::fail(
            "file_modes",
            format!("open to other users: {listed}"),
            format!("chmod 600 {paths} (they hold the credentials and the key that seals them)"),
        );
    }
    match open_mode(&folder) {
        Some(mode) => Finding::warn(
            "file_modes",
            format!(
                "the store's folder {} is open to other users (mode {mode:04o})",
                folder.display()
            ),
            format!(
                "chmod 700 {}, or give the store a folder of its own",
                folder.display()
            ),
        ),
        None => Finding::ok(
            "file_modes",
            "the store's folder and files, and the key file, are private to their owner",
        ),
    }
}
