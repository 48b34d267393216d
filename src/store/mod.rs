//! The store: one SQLite file (WAL) behind an r2d2 pool, migrated from `schema/` and tracked by
//! `PRAGMA user_version`. Credentials are sealed with the master key before they touch a row.
//!
//! Every method blocks: call them from the CLI directly, and from the server only through
//! `web::block` (see [`Store::run`]), never on an arbiter thread.

mod accounts;
pub mod admin_tokens;
pub mod crypto;
mod faults;
pub mod keys;
mod pool_state;
pub mod tenants;
mod tokens;
mod updates;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OptionalExtension;

pub use accounts::{AccountSummary, ImportOutcome, NewAccount};
pub use crypto::{CryptoError, KeySource, MasterKey};
pub use keys::{ApiKeyRow, CreatedKey, KeyHash, KeyRecord, NewKey};
pub use pool_state::{PoolRow, RoutingChange};
pub use tenants::{NewTenant, TenantRow};
pub use tokens::{RefreshedTokens, StoredRefreshToken, TokenWrite};

/// Forward-only migrations; position + 1 is the `user_version` after applying one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/0001_accounts_and_keys.sql"),
    include_str!("../../schema/0002_admin.sql"),
    include_str!("../../schema/0003_token_refresh.sql"),
    include_str!("../../schema/0004_pool_state.sql"),
    include_str!("../../schema/0005_governance.sql"),
];

const CANARY_ROW: &str = "store_meta";
const CANARY_COLUMN: &str = "master_key_canary";
const CANARY_TEXT: &[u8] = b"codex-relay master key check";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the store was written by a newer codex-relay (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "the master key does not open this store (store sealed with key {found}, configured key is {expected}); \
         set CODEX_RELAY_MASTER_KEY or CODEX_RELAY_MASTER_KEY_FILE to the key the store was created with"
    )]
    WrongMasterKey { expected: String, found: String },
    #[error("a sealed credential could not be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the store's background task failed: {0}")]
    Blocking(String),
}

/// A cheap, cloneable handle to the database and the master key.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    key: Arc<MasterKey>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("key", &self.key).finish()
    }
}

type Conn = PooledConnection<SqliteConnectionManager>;

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and proves
    /// that `key` is the key this store was sealed with.
    pub fn open(path: &Path, pool_size: u32, key: MasterKey) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
        });
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        let store = Store {
            pool,
            key: Arc::new(key),
        };
        let mut conn = store.conn()?;
        migrate(&mut conn)?;
        store.check_master_key(&conn)?;
        Ok(store)
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// Runs a blocking store call on actix's blocking thread pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        actix_web::web::block(move || work(&store))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?
    }

    /// Seals a canary on first use; afterwards opening it proves the key is right, so a wrong key
    /// is a clear startup error instead of garbage tokens later.
    fn check_master_key(&self, conn: &Conn) -> Result<(), StoreError> {
        let sealed: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM store_meta WHERE name = ?1",
                [CANARY_COLUMN],
                |row| row.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            let fresh = self.key.seal(CANARY_ROW, CANARY_COLUMN, CANARY_TEXT);
            conn.execute(
                "INSERT INTO store_meta (name, value) VALUES (?1, ?2)",
                rusqlite::params![CANARY_COLUMN, fresh],
            )?;
            return Ok(());
        };
        match self.key.open(CANARY_ROW, CANARY_COLUMN, &sealed) {
            Ok(text) if text == CANARY_TEXT => Ok(()),
            Err(CryptoError::WrongKey { expected, found }) => {
                Err(StoreError::WrongMasterKey { expected, found })
            }
            _ => Err(StoreError::WrongMasterKey {
                expected: self.key.id_hex(),
                found: "unknown".to_owned(),
            }),
        }
    }
}

fn migrate(conn: &mut Conn) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_migrates_once_and_accepts_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/relay.db");
        drop(Store::open(&path, 2, MasterKey::from_bytes(&[7; 32]).unwrap()).unwrap());
        let store = Store::open(&path, 2, MasterKey::from_bytes(&[7; 32]).unwrap()).unwrap();
        let version: i64 = store
            .conn()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_wrong_master_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        drop(Store::open(&path, 2, MasterKey::generate()).unwrap());
        let err = Store::open(&path, 2, MasterKey::generate()).unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
        assert!(err.to_string().contains("CODEX_RELAY_MASTER_KEY"));
    }
}
