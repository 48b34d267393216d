//! The ports the actors need from the service around them.

use futures_util::future::BoxFuture;

use crate::types::{AccountCredentials, AccountId};

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
