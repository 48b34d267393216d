//! Messages the [`RouterActor`](super::RouterActor) answers.

use std::time::SystemTime;

use actix::Message;

use crate::account::lease::Lease;
use crate::account::messages::AccountStatus;
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
    /// Plans whose accounts do not serve `model` (from the model registry); accounts of these
    /// plans are skipped. Accounts whose plan is unknown are never skipped for it.
    pub exclude_plans: Vec<String>,
    /// The account that wrote encrypted items the request replays, when the host knows it (it
    /// remembered them): without a binding for the conversation, the request is placed as if
    /// bound to it — it goes there first, and a move away is reported as one.
    pub written_by: Option<AccountId>,
    /// The only account that can serve the request: it holds the state the request continues
    /// (a WebSocket turn naming a response made on that account's upstream connection). It goes
    /// first, ahead of the conversation's binding, and the binding follows it.
    pub pinned: Option<AccountId>,
}

/// Why no lease was granted, judged over the whole pool (never one account's error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    #[error("the pool has no accounts")]
    EmptyPool,
    #[error("every account of the pool is cooling down")]
    AllCooling {
        /// The earliest moment an account serves again.
        until: SystemTime,
        /// Every account reached its usage limit (else some are only rate limited).
        usage_limit: bool,
    },
    #[error("every usable account has its maximum of calls in flight")]
    Busy,
    #[error("no account of the pool is usable now")]
    NoUsableAccount,
}

/// Judges the pool as [`Acquire`] would when nothing is left to try (after the last attempt),
/// over the accounts whose plan serves the request's model.
#[derive(Debug, Default, Message)]
#[rtype(result = "AcquireError")]
pub struct JudgeExhaustion {
    /// As in [`Acquire::exclude_plans`].
    pub exclude_plans: Vec<String>,
}

/// Stops the router and every account actor it started (their timers, probes and refreshes
/// with them); answers once they have been told. For a relay that stops inside a process that
/// lives on (tests, an embedding): without it the actors' timers keep them running forever.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

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
pub(crate) struct AccountUnreachable;

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
    /// Conversations currently bound to an account.
    pub conversations: usize,
    /// Bound conversations moved because their account could not serve, since startup.
    pub affinity_moves: u64,
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
    Refused(#[from] crate::account::lease::Refusal),
}
