//! The ports the actors need from the service around them.

use futures_util::future::{BoxFuture, LocalBoxFuture};
use secrecy::SecretString;

use crate::types::{AccountCredentials, AccountId, PoolRecord, RefreshedTokens};

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

/// How one refresh attempt ended, as the refresher saw it.
#[derive(Debug)]
pub enum RefreshAttempt {
    /// The token endpoint answered and the new set is durable in the store: serve it.
    Refreshed(AccountCredentials),
    /// The token endpoint rotated the tokens but the store could not take them (locked, full):
    /// serve the new access token, keep the set, and write it again until it lands
    /// ([`TokenRefresher::save`]). `error` says why the write failed (no secret).
    Unsaved {
        tokens: RefreshedTokens,
        error: String,
    },
    /// The stored token version was no longer the one asked about (another refresh or a new
    /// login came first): these are the store's current credentials; nothing was sent.
    Superseded(AccountCredentials),
    /// The token endpoint refused: its HTTP status and the error code of its body, if any.
    Rejected { status: u16, code: Option<String> },
    /// No usable answer (network, timeout, unreadable body, store failure). Never a secret.
    Failed(String),
    /// The account is gone from the store.
    Gone,
}

/// How a write of a rotated set the store could not take before ended.
#[derive(Debug)]
pub enum SaveAttempt {
    /// The set is durable now: these are the store's credentials (the same tokens).
    Stored(AccountCredentials),
    /// The stored version moved (a new login came first): these are the store's credentials;
    /// the rotated set is no longer needed.
    Superseded(AccountCredentials),
    /// Still not stored (no secret in the text): keep the set and try again.
    Failed(String),
    /// The account is gone from the store.
    Gone,
}

/// Refreshes an account's tokens and records what the account must remember. The refresher reads
/// the refresh token from the store, calls the token endpoint and stores the rotated set
/// (compare-and-swap on the token version) before it is returned. Only when that write fails does
/// a refresh token reach the actor: inside the [`RefreshedTokens`] it must keep, serve and hand
/// back, since the one in the store is spent.
/// Futures run on the actor's own arbiter, so they need not be `Send` (awc is not).
pub trait TokenRefresher: Send + Sync + 'static {
    /// One refresh of `id`'s token set, stored at `token_version`. `unsaved` is a rotated set
    /// replacing that version which the store has not taken: its refresh token is the live one,
    /// so the refresh presents it instead of the stored (spent) one, and stores its answer over
    /// the same version.
    fn refresh(
        &self,
        id: AccountId,
        token_version: i64,
        unsaved: Option<RefreshedTokens>,
    ) -> LocalBoxFuture<'static, RefreshAttempt>;
    /// Writes a rotated set the store could not take before (compare-and-swap on
    /// `tokens.replaces_version`).
    fn save(&self, id: AccountId, tokens: RefreshedTokens) -> LocalBoxFuture<'static, SaveAttempt>;
    /// The account's actor stops while holding a rotated set the store never took: the stored
    /// refresh token is spent, so the login is lost unless the set is stored. Says so loudly.
    fn unsaved_at_stop(&self, id: AccountId);
    /// Persists that the login at `token_version` needs a human, with the reason.
    fn reauth_required(
        &self,
        id: AccountId,
        token_version: i64,
        reason: String,
    ) -> LocalBoxFuture<'static, ()>;
    /// Persists the last transient failure of the token set at `token_version` (for the admin
    /// view); a newer token set is not marked with an older failure.
    fn failed(
        &self,
        id: AccountId,
        token_version: i64,
        error: String,
    ) -> LocalBoxFuture<'static, ()>;
}

/// For pools that never refresh (tests of selection and reconciliation): every attempt fails.
pub struct NoRefresher;

impl TokenRefresher for NoRefresher {
    fn refresh(
        &self,
        _: AccountId,
        _: i64,
        _: Option<RefreshedTokens>,
    ) -> LocalBoxFuture<'static, RefreshAttempt> {
        Box::pin(async { RefreshAttempt::Failed("refresh is not configured".to_owned()) })
    }
    fn save(&self, _: AccountId, _: RefreshedTokens) -> LocalBoxFuture<'static, SaveAttempt> {
        Box::pin(async { SaveAttempt::Failed("refresh is not configured".to_owned()) })
    }
    fn unsaved_at_stop(&self, _: AccountId) {}
    fn reauth_required(&self, _: AccountId, _: i64, _: String) -> LocalBoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn failed(&self, _: AccountId, _: i64, _: String) -> LocalBoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
