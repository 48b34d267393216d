//! The store's files on disk: the data folder is private to the relay's user (0700) and the
//! database with its `-wal` and `-shm` files too (0600), whatever the umask.
//!
//! A folder the relay creates is created private. An existing folder that is more open is
//! tightened only when it is the relay's own — it holds nothing but the store's files — since
//! `store.path` may name a file in a shared folder (a home, `/tmp`) whose mode is not the relay's
//! to change; then the relay warns instead. Tightening removes the group's and others' bits and
//! never adds one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The files SQLite keeps beside the database while it is open, and the store's lock file.
const COMPANIONS: [&str; 4] = ["-wal", "-shm", "-journal", super::lock::LOCK_SUFFIX];
/// The master key file the relay generates beside the database.
pub(super) const KEY_FILE: &str = "master.key";
/// The audit trail's file when `audit.path` names none: beside the database, kept by the same
/// rules (its folder stays the relay's own).
pub const AUDIT_FILE: &str = "audit.db";
/// Content capture's own database, kept beside the store (`capture`): the relay's file too.
pub const CAPTURE_FILE: &str = "capture.db";

/// The folder that holds the database (`.` for a bare file name).
pub(crate) fn folder_of(db: &Path) -> &Path {
    db.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// Creates `dir` and any missing parent as 0700 (not 0777 less the umask).
pub(super) fn create_private_folder(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes the database's folder ready before SQLite opens it: created private when missing,
/// tightened when it is the relay's own; a warning otherwise. The database file itself is
/// created 0600 when missing, so SQLite, which gives `-wal` and `-shm` the database's mode,
/// creates those private too.
pub(crate) fn prepare(db: &Path, warnings: &mut Vec<String>) -> Result<(), StoreError> {
    let dir = folder_of(db);
    let folder_error = |source| StoreError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        create_private_folder(dir).map_err(folder_error)?;
    }
    tighten_folder(dir, db, warnings);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(db) {
        Ok(_) => Ok(()),
        // SQLite says what is wrong with a file it cannot write, in its own terms.
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        Err(error) => Err(StoreError::Unusable {
            path: db.to_path_buf(),
            cause: error.to_string(),
        }),
    }
}

/// Removes the group's and others' bits from the database and its companion files (a store
/// written by an older relay, or under a permissive umask). Run once SQLite has them open.
pub(crate) fn tighten_files(db: &Path, warnings: &mut Vec<String>) {
    for file in store_files(db) {
        if let Some(mode) = open_mode(&file) {
            if let Err(error) = set_mode(&file, mode & 0o700) {
                warnings.push(format!(
                    "could not make {} private (mode {mode:04o}): {error}",
                    file.display()
                ));
            }
        }
    }
}

/// What a read-only open reports instead of changing anything.
pub(super) fn report_open_files(db: &Path, warnings: &mut Vec<String>) {
    let dir = folder_of(db);
    let files = store_files(db).into_iter();
    for path in std::iter::once(dir.to_path_buf()).chain(files) {
        if let Some(mode) = open_mode(&path) {
            warnings.push(format!(
                "{} is open to other users (mode {mode:04o}); a command that writes the store makes it private",
                path.display()
            ));
        }
    }
}

fn tighten_folder(dir: &Path, db: &Path, warnings: &mut Vec<String>) {
    let Some(mode) = open_mode(dir) else {
        return;
    };
    if !holds_only_store_files(dir, db) {
        warnings.push(format!(
            "the store's folder {} is open to other users (mode {mode:04o}) and holds other files, \
             so the relay leaves it as it is: give the store a folder of its own, or make this one \
             private (chmod 700)",
            dir.display()
        ));
        return;
    }
    if let Err(error) = set_mode(dir, mode & 0o700) {
        warnings.push(format!(
            "the store's folder {} is open to other users (mode {mode:04o}) and could not be made \
             private: {error}",
            dir.display()
        ));
    }
}

/// True when every entry of `dir` is the database, a companion of it, the master key file, the
/// capture file or the audit trail's file (each with its companions).
fn holds_only_store_files(dir: &Path, db: &Path) -> bool {
    let Some(name) = db.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        entry.ok().is_some_and(|entry| {
            let entry = entry.file_name();
            let entry = entry.to_string_lossy();
            entry == KEY_FILE
                || entry.starts_with(&format!("{KEY_FILE}.new-"))
                || [name, CAPTURE_FILE, AUDIT_FILE].iter().any(|db| {
                    entry == *db
                        || COMPANIONS
                            .iter()
                            .any(|suffix| entry.strip_prefix(db) == Some(suffix))
                })
        })
    })
}

/// Where the master key file of the store at `db` is kept: beside it.
pub fn key_file_of(db: &Path) -> PathBuf {
    folder_of(db).join(KEY_FILE)
}

/// The store's folder, then the files that hold its data (the database and SQLite's companions),
/// whose modes these rules keep private; `doctor` checks them by the same list.
pub fn store_paths(db: &Path) -> (PathBuf, Vec<PathBuf>) {
    (folder_of(db).to_path_buf(), store_files(db))
}

fn store_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    files.extend(COMPANIONS.iter().map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }));
    files
}

/// The permission bits of `path` when the group or others have any (`None` when private or
/// missing).
#[cfg(unix)]
pub fn open_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
pub fn open_mode(_: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_folder_of_store_files_is_tightened_and_a_shared_one_only_reported() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("own");
        fs::create_dir(&own).unwrap();
        set_mode(&own, 0o755).unwrap();
        fs::write(own.join(KEY_FILE), "k").unwrap();
        fs::write(own.join("relay.db-wal"), "").unwrap();
        let mut warnings = Vec::new();
        prepare(&own.join("relay.db"), &mut warnings).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(mode(&own), 0o700);
        assert_eq!(mode(&own.join("relay.db")), 0o600);

        let shared = root.path().join("shared");
        fs::create_dir(&shared).unwrap();
        set_mode(&shared, 0o755).unwrap();
        fs::write(shared.join("notes.txt"), "mine").unwrap();
        prepare(&shared.join("relay.db"), &mut warnings).unwrap();
        assert_eq!(mode(&shared), 0o755, "not the relay's folder to change");
        assert!(warnings[0].contains("0755"), "{warnings:?}");
        assert!(warnings[0].contains(&shared.display().to_string()));
    }

    #[test]
    fn the_capture_file_beside_the_store_keeps_the_folder_the_relays_own() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("own");
        fs::create_dir(&own).unwrap();
        set_mode(&own, 0o755).unwrap();
        for name in [CAPTURE_FILE, "capture.db-wal", "capture.db-shm"] {
            fs::write(own.join(name), "").unwrap();
        }
        let mut warnings = Vec::new();
        prepare(&own.join("relay.db"), &mut warnings).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(mode(&own), 0o700);
    }

    #[test]
    fn open_store_files_lose_the_group_and_other_bits_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relay.db");
        fs::write(&db, "").unwrap();
        set_mode(&db, 0o644).unwrap();
        let wal = dir.path().join("relay.db-wal");
        fs::write(&wal, "").unwrap();
        set_mode(&wal, 0o666).unwrap();
        let mut warnings = Vec::new();
        tighten_files(&db, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
    }
}
