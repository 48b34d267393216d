//! The store's lock file, `<database>.lock`: a running server holds a shared advisory lock
//! (`flock`) on it for as long as it runs, and `restore` an exclusive one while it replaces the
//! database. So a restore refuses while a server is running, and a server refuses to start in
//! the middle of a restore. The kernel drops the lock when its process ends, however it ends: a
//! server killed by SIGKILL or a power loss leaves nothing that blocks the next restore.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{files, StoreError};

/// What the lock file's name adds to the database's.
pub(super) const LOCK_SUFFIX: &str = ".lock";

/// A lock on the store, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _held: Flock<File>,
}

impl StoreLock {
    /// The lock a server holds while it runs; refused while a restore holds the store.
    pub fn for_server(db: &Path) -> Result<StoreLock, StoreError> {
        take(db, FlockArg::LockSharedNonblock)?.ok_or_else(|| {
            StoreError::Conflict(format!(
                "a restore is replacing the store {} (it holds {}): start the server once it \
                 has finished",
                db.display(),
                lock_path(db).display()
            ))
        })
    }

    /// The lock a restore holds while it replaces the database; refused while a server runs.
    pub fn for_restore(db: &Path) -> Result<StoreLock, StoreError> {
        take(db, FlockArg::LockExclusiveNonblock)?.ok_or_else(|| {
            StoreError::Conflict(format!(
                "a server is running on the store {} (it holds {}): stop it first, then restore",
                db.display(),
                lock_path(db).display()
            ))
        })
    }
}

/// The lock file of the store at `db`.
pub(super) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(LOCK_SUFFIX);
    PathBuf::from(name)
}

/// Takes the lock without waiting; `None` when another process holds it.
fn take(db: &Path, how: FlockArg) -> Result<Option<StoreLock>, StoreError> {
    let path = lock_path(db);
    let cannot = |source| StoreError::Unusable {
        path: path.clone(),
        cause: format!("the store's lock file cannot be opened: {source}"),
    };
    let folder = files::folder_of(db);
    if !folder.exists() {
        files::create_private_folder(folder).map_err(&cannot)?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(&cannot)?;
    Ok(Flock::lock(file, how)
        .ok()
        .map(|held| StoreLock { _held: held }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_share_the_store_and_a_restore_excludes_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/relay.db");
        let first = StoreLock::for_server(&db).unwrap();
        let second = StoreLock::for_server(&db).unwrap();
        let refused = StoreLock::for_restore(&db).unwrap_err().to_string();
        assert!(refused.contains("a server is running"), "{refused}");
        drop((first, second));
        let restoring = StoreLock::for_restore(&db).unwrap();
        let refused = StoreLock::for_server(&db).unwrap_err().to_string();
        assert!(refused.contains("a restore is replacing"), "{refused}");
        drop(restoring);
        assert!(StoreLock::for_server(&db).is_ok());
    }
}
