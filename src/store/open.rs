//! Opening the store: one connection first, outside the pool, so that a file that is not a
//! store, is damaged or cannot be written fails at once with its cause (a pool would retry it
//! for its whole connection timeout); then the schema, migrated in one immediate transaction
//! (processes starting together on a fresh store do not race), and the master key proved by
//! the sealed canary.
//!
//! A read-only open (the CLI's listings) writes nothing: no migration, no canary, no `PRAGMA
//! journal_mode`, `query_only` on every connection. A WAL store in a folder this process cannot
//! write has no `-shm` to share, so SQLite cannot read it normally; when no `-wal` holds
//! unmerged changes the file alone is the whole store and is read as immutable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2::ManageConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::crypto::sealed_by;
use super::keyring::{canary, Keyring, CANARY_NAME, META_ROW};
use super::{files, CryptoError, MasterKey, Store, StoreError};

/// Forward-only migrations; position + 1 is the `user_version` after applying one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/0001_accounts_and_keys.sql"),
    include_str!("../../schema/0002_admin.sql"),
    include_str!("../../schema/0003_token_refresh.sql"),
    include_str!("../../schema/0004_pool_state.sql"),
    include_str!("../../schema/0005_governance.sql"),
];

const CANARY_TEXT: &[u8] = b"codex-relay master key check";

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the store is opened to change it or only to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and proves
    /// that `key` is the key this store was sealed with. The folder and files are made private
    /// (see `files.rs`); what could not be is in [`Store::warnings`].
    pub fn open(path: &Path, pool_size: u32, key: MasterKey) -> Result<Store, StoreError> {
        open(path, pool_size, key, Access::ReadWrite)
    }

    /// Opens an existing store to read it only, even when this process cannot write the file
    /// or its folder. Refused when the store needs a migration first.
    pub fn open_read_only(
        path: &Path,
        pool_size: u32,
        key: MasterKey,
    ) -> Result<Store, StoreError> {
        open(path, pool_size, key, Access::ReadOnly)
    }
}

fn open(path: &Path, pool_size: u32, key: MasterKey, access: Access) -> Result<Store, StoreError> {
    let mut warnings = Vec::new();
    let (manager, first) = match access {
        Access::ReadWrite => {
            files::prepare(path, &mut warnings)?;
            let manager = read_write_manager(path);
            let first = first_read_write(&manager, path, &key)?;
            files::tighten_files(path, &mut warnings);
            (manager, first)
        }
        Access::ReadOnly => {
            files::report_open_files(path, &mut warnings);
            let (manager, first) = read_only_connection(path)?;
            check_read_only(&first, &key).map_err(|e| named(path, access, e))?;
            (manager, first)
        }
    };
    drop(first);
    let pool = r2d2::Pool::builder()
        .max_size(pool_size)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)?;
    Ok(Store {
        pool,
        keys: Arc::new(Keyring::new(key)),
        warnings: warnings.into(),
        errors: Default::default(),
    })
}

/// The first connection of a read-write open, its schema migrated and the key proved. Of
/// processes creating a store at once (a command and `serve`), one can meet SQLITE_BUSY where
/// SQLite does not wait by itself (a new file switching to WAL): such an attempt is made again,
/// for as long as a busy connection would wait.
fn first_read_write(
    manager: &SqliteConnectionManager,
    path: &Path,
    key: &MasterKey,
) -> Result<Connection, StoreError> {
    let access = Access::ReadWrite;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let attempt = match manager.connect() {
            Ok(mut first) => prove_read_write(&mut first, path, key).map(|()| first),
            Err(e) if !busy(&e) => return Err(classified(path, access, &e)),
            Err(e) => Err(StoreError::Sqlite(e)),
        };
        match attempt {
            Err(StoreError::Sqlite(e)) if busy(&e) && Instant::now() < deadline => {
                // Before the relay runs (or in a command): nothing else waits on this thread.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.map_err(|e| named(path, access, e)),
        }
    }
}

fn prove_read_write(conn: &mut Connection, path: &Path, key: &MasterKey) -> Result<(), StoreError> {
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(unusable(path, READ_ONLY));
    }
    migrate_and_seal(conn, key)
}

fn busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The id of the master key the store at `db` was sealed with, when it holds anything sealed;
/// `None` for a store that does not exist yet or has never been opened. Writes nothing.
pub fn sealing_key_id(db: &Path) -> Result<Option<String>, StoreError> {
    if std::fs::metadata(db).map_or(true, |m| m.len() == 0) {
        return Ok(None);
    }
    let (_, conn) = read_only_connection(db)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('store_meta', 'account_tokens')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| named(db, Access::ReadOnly, e.into()))?;
    if tables < 2 {
        return Ok(None);
    }
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM store_meta WHERE name = ?1
             UNION ALL SELECT access_token FROM account_tokens LIMIT 1",
            [CANARY_NAME],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| named(db, Access::ReadOnly, e.into()))?;
    Ok(sealed.map(|envelope| sealed_by(&envelope).unwrap_or_else(|| "unknown".to_owned())))
}

fn read_write_manager(path: &Path) -> SqliteConnectionManager {
    SqliteConnectionManager::file(path).with_init(|conn| {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
    })
}

/// A read-only manager for `source`: a path, or a `file:` URI when `uri` (a path is never read
/// as one, whatever its first letters).
fn read_only_manager(source: impl AsRef<Path>, uri: bool) -> SqliteConnectionManager {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if uri {
        flags |= OpenFlags::SQLITE_OPEN_URI;
    }
    SqliteConnectionManager::file(source)
        .with_flags(flags)
        .with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "query_only", true)
        })
}

/// A read-only manager and its first connection, proved by reading the schema version; falls
/// back to an immutable read when SQLite cannot share the WAL index and no `-wal` is pending.
fn read_only_connection(path: &Path) -> Result<(SqliteConnectionManager, Connection), StoreError> {
    let manager = read_only_manager(path, false);
    let first = connect(&manager, path, Access::ReadOnly)?;
    let read = user_version(&first);
    let cannot_share_index = matches!(
        read.as_ref().map_err(rusqlite::Error::sqlite_error_code),
        Err(Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen))
    );
    if !cannot_share_index || pending_wal(path) {
        read.map_err(|e| classified(path, Access::ReadOnly, &e))?;
        return Ok((manager, first));
    }
    let manager = read_only_manager(immutable_uri(path)?, true);
    let first = connect(&manager, path, Access::ReadOnly)?;
    user_version(&first).map_err(|e| classified(path, Access::ReadOnly, &e))?;
    Ok((manager, first))
}

fn connect(
    manager: &SqliteConnectionManager,
    path: &Path,
    access: Access,
) -> Result<Connection, StoreError> {
    manager
        .connect()
        .map_err(|error| classified(path, access, &error))
}

/// True when the store's `-wal` holds changes not yet merged into the database file.
fn pending_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// `file:///…?immutable=1` for `path` (percent-encoded as SQLite's URIs are).
fn immutable_uri(path: &Path) -> Result<String, StoreError> {
    let absolute = std::path::absolute(path).map_err(|e| unusable(path, &e.to_string()))?;
    let url = url::Url::from_file_path(&absolute)
        .map_err(|()| unusable(path, "its path cannot be written as a file: URI"))?;
    Ok(format!("{url}?immutable=1"))
}

/// Refuses a store (or a backup) a newer codex-relay wrote: this build cannot know its schema.
pub(super) fn refuse_newer_schema(conn: &Connection) -> Result<(), StoreError> {
    let (found, known) = (user_version(conn)?, MIGRATIONS.len() as i64);
    match found > known {
        true => Err(StoreError::TooNew { found, known }),
        false => Ok(()),
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the schema up to date and seals the canary on first use, each checked again inside
/// one immediate transaction: of processes opening a fresh store together, one migrates and
/// the others find it done.
fn migrate_and_seal(conn: &mut Connection, key: &MasterKey) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    if user_version(conn)? == known && canary(conn)?.is_some() {
        return verify_canary(conn, key);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = user_version(&tx)?;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for sql in MIGRATIONS
        .iter()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.execute_batch(sql)?;
    }
    if current != known {
        tx.pragma_update(None, "user_version", known)?;
    }
    if canary(&tx)?.is_none() {
        let fresh = key.seal(META_ROW, CANARY_NAME, CANARY_TEXT);
        tx.execute(
            "INSERT INTO store_meta (name, value) VALUES (?1, ?2)",
            rusqlite::params![CANARY_NAME, fresh],
        )?;
    }
    tx.commit()?;
    verify_canary(conn, key)
}

/// What a read-only open checks: the schema is this build's, and the key opens the canary.
fn check_read_only(conn: &Connection, key: &MasterKey) -> Result<(), StoreError> {
    let (found, known) = (user_version(conn)?, MIGRATIONS.len() as i64);
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    if found < known {
        return Err(StoreError::Outdated { found, known });
    }
    verify_canary(conn, key)
}

/// Opening the canary proves the key, so a wrong key is a clear startup error instead of
/// garbage tokens later. A store without a canary has sealed nothing yet.
fn verify_canary(conn: &Connection, key: &MasterKey) -> Result<(), StoreError> {
    let Some(sealed) = canary(conn)? else {
        return Ok(());
    };
    match key.open(META_ROW, CANARY_NAME, &sealed) {
        Ok(text) if text == CANARY_TEXT => Ok(()),
        Err(CryptoError::WrongKey { expected, found }) => {
            Err(StoreError::WrongMasterKey { expected, found })
        }
        _ => Err(StoreError::WrongMasterKey {
            expected: key.id_hex(),
            found: "unknown".to_owned(),
        }),
    }
}

const READ_ONLY: &str = "this process cannot write it (the file or its folder is read-only for \
    this user); the listings (`account list`, `key list`, `tenant list`, `admin-token list`) \
    only read and still work";

fn unusable(path: &Path, cause: &str) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        cause: cause.to_owned(),
    }
}

/// A SQLite failure of the store as a whole, said in terms of what the operator can do.
fn classified(path: &Path, access: Access, error: &rusqlite::Error) -> StoreError {
    let cause = match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!(
            "it is not a codex-relay store ({error}): point store.path at the store, or move \
             this file away to start a new one"
        ),
        Some(ErrorCode::DatabaseCorrupt) => {
            format!("it is damaged ({error}): restore it from a backup")
        }
        Some(ErrorCode::ReadOnly) if access == Access::ReadWrite => READ_ONLY.to_owned(),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            let may = match access {
                Access::ReadWrite => "read and write",
                Access::ReadOnly => "read",
            };
            format!("it cannot be opened ({error}): check that this user may {may} the file and its folder")
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("another process holds it locked ({error})")
        }
        _ => error.to_string(),
    };
    unusable(path, &cause)
}

/// A failure while checking an open store: SQLite's own failures are named as the store's.
fn named(path: &Path, access: Access, error: StoreError) -> StoreError {
    match error {
        StoreError::Sqlite(error) if error.sqlite_error_code().is_some() => {
            classified(path, access, &error)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
