//! The store: one SQLite file (WAL) behind an r2d2 pool, migrated from `schema/` and tracked by
//! `PRAGMA user_version` (`open.rs`: opening, read-only opens; `files.rs`: the files' modes).
//! Credentials are sealed with the master key before they touch a row.
//!
//! Every method blocks: call them from the CLI directly, and from the server only through
//! `web::block` (see [`Store::run`]), never on an arbiter thread.

mod account_routing;
mod accounts;
pub mod admin_tokens;
mod backup;
pub mod crypto;
mod faults;
pub mod files;
mod key_command;
mod key_source;
mod keyring;
pub mod keys;
mod lock;
mod metrics;
mod open;
mod policy_columns;
mod rekey;
pub mod tenants;
mod tokens;
mod updates;
pub mod usage;

use std::path::PathBuf;
use std::sync::Arc;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;

pub use account_routing::{PoolRow, RoutingChange};
pub use accounts::{AccountSummary, ImportOutcome, NewAccount};
pub use backup::{inspect, restore, BackupInfo};
pub use crypto::{sealed_by, CryptoError, MasterKey};
pub use key_source::{KeySource, MASTER_KEY_COMMAND_ENV, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};
pub use keys::{ApiKeyRow, CreatedKey, KeyHash, KeyRecord, NewKey};
pub use lock::StoreLock;
pub use metrics::Operation;
pub use open::sealing_key_id;
pub use rekey::Rekeyed;
pub use tenants::{NewTenant, TenantRow};
pub use tokens::{RefreshedTokens, StoredRefreshToken, TokenWrite};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use the store {path}: {cause}")]
    Unusable { path: PathBuf, cause: String },
    #[error("store connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the store was written by a newer codex-relay (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "the store is at schema {found} and this build needs {known}: run a command that changes \
         the store (or `serve`) once to upgrade it, then list again"
    )]
    Outdated { found: i64, known: i64 },
    #[error(
        "the master key does not open this store (store sealed with key {found}, configured key is {expected}); \
         set CODEX_RELAY_MASTER_KEY, CODEX_RELAY_MASTER_KEY_FILE or CODEX_RELAY_MASTER_KEY_COMMAND \
         to the key the store is sealed with"
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
    keys: Arc<keyring::Keyring>,
    /// What opening found but could not fix (a folder open to others that is not the relay's).
    warnings: Arc<[String]>,
    /// Faults met by [`Store::run`], for the metrics.
    errors: metrics::StoreErrors,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("key", self.keys.configured())
            .finish()
    }
}

type Conn = PooledConnection<SqliteConnectionManager>;

impl Store {
    fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The key the store was opened with.
    pub fn master_key(&self) -> &MasterKey {
        self.keys.configured()
    }

    /// The key values sealed now take: the one the store is sealed under, which follows a
    /// `store rekey` made while this handle is open (content capture seals its records with it).
    pub fn sealing_key_now(&self) -> Result<std::sync::Arc<MasterKey>, StoreError> {
        let conn = self.conn()?;
        self.keys.sealing_key(&conn)
    }

    /// Opens `envelope`, sealed for `row` and `column` outside the store (a captured record),
    /// with the key it names among those this handle knows or learns from a rekey's handover.
    pub fn open_sealed(
        &self,
        row: &str,
        column: &str,
        envelope: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let conn = self.conn()?;
        Ok(self.keys.open(&conn, row, column, envelope)?)
    }

    /// What opening the store found but could not fix, for the operator to read.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Runs a blocking store call on actix's blocking thread pool; a fault it meets is counted
    /// under `operation` (`store_errors_total`).
    pub async fn run<T, F>(&self, operation: Operation, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        let result = actix_web::web::block(move || work(&store))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))
            .and_then(|result| result);
        if let Err(error) = &result {
            self.errors.count(operation, error);
        }
        result
    }

    /// Registers the store's families (`store_errors_total`) on `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.errors.register(registry);
    }
}

pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One of the store's unix times as people read it: RFC 3339 (UTC, whole seconds); the number
/// itself if it is out of range. The CLI, the admin API and the pool's view all show times so.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
