//! Messages the [`RouterActor`](super::RouterActor) answers.

use actix::Message;

use crate::account::messages::AccountStatus;
use crate::lease::Lease;
use crate::ports::SourceError;
use crate::types::AccountId;

/// Asks for a lease on a usable account for one upstream call.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Lease, AcquireError>")]
pub struct Acquire {
    /// The upstream model slug (routing by plan comes with the pool policy).
    pub model: String,
    /// Conversation affinity key, when the request carries one.
    pub affinity: Option<String>,
    /// Accounts already tried for this request.
    pub exclude: Vec<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    #[error("the pool has no accounts")]
    EmptyPool,
    #[error("no account of the pool is usable now")]
    NoUsableAccount,
}

/// Re-reads the accounts from the source now instead of at the next interval.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SyncNow;

/// Re-reads the accounts from the source and answers once the pool follows it, so a caller that
/// just changed the store (an admin action) sees its change applied.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SourceError>")]
pub struct Reconcile;

/// The live status of every account the router keeps (accounts whose actor does not answer are
/// left out; the next sync restarts them).
#[derive(Debug, Message)]
#[rtype(result = "Vec<AccountStatus>")]
pub struct GetAccountStatuses;

/// An account's mailbox was found closed (its actor died): restart it from the source.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct AccountUnreachable(pub AccountId);

/// The pool as the router sees it.
#[derive(Debug, Message)]
#[rtype(result = "PoolStatus")]
pub struct GetPoolStatus;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub accounts: usize,
    pub usable: usize,
    /// True once the first read of the source has completed.
    pub synced: bool,
}

/// Refresh one account's tokens now (operator request) and wait for the result.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RefreshError>")]
pub struct RefreshAccount(pub AccountId);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("no account with this id is running")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] crate::account::messages::Refusal),
}
