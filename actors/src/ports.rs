//! The ports the actors need from the service around them.

use futures_util::future::{BoxFuture, LocalBoxFuture};
use secrecy::SecretString;

use crate::types::{AccountCredentials, AccountId, PoolRecord};

#[derive(Debug, Clone, thiserror::Error)]
#[error("account source: {0}")]
pub struct SourceError(pub String);

/// Where accounts come from: the store is the source of truth, the actors follow it.
/// Implementations must not block the calling thread (run blocking I/O elsewhere).
pub trait AccountSource: Send + Sync + 'static {
    /// `(id, version)` of every account that exists now.
    fn versions(&self) -> BoxFuture<'static, Result<Vec<(AccountId, i64)>, SourceError>>;
    /// One account's current credentials, `None` when it no longer exists.
    fn load(
        &self,
        id: AccountId,
    ) -> BoxFuture<'static, Result<Option<AccountCredentials>, SourceError>>;
}

/// Where an account's pool state (health, quota) is kept across restarts. Saving must not block
/// the calling thread; errors are the implementation's to log (the actor saves again at the next
/// change).
pub trait PoolStateSink: Send + Sync + 'static {
    fn save(
        &self,
        id: AccountId,
        record: PoolRecord,
    ) -> BoxFuture<'static, Result<(), SourceError>>;
}

/// The account a health probe checks.
pub struct ProbeTarget {
    pub chatgpt_account_id: String,
    pub access_token: SecretString,
    pub is_fedramp: bool,
}

/// What a health probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Status(u16),
    TransportFailed,
    TimedOut,
}

/// A cheap upstream call that shows whether an account serves (e.g. the model list). The future
/// runs on the account actor's thread, so it need not be `Send` (HTTP clients often are not).
pub trait HealthProber: Send + Sync + 'static {
    fn probe(&self, target: ProbeTarget) -> LocalBoxFuture<'static, ProbeResult>;
}
