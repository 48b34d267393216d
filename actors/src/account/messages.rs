//! Messages an [`AccountActor`](super::AccountActor) answers.

use actix::Message;

use super::state::AccountState;
use crate::lease::{Lease, Outcome};
use crate::types::{AccountCredentials, AccountId};

/// Asks for the right to make one upstream call.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, Refusal>")]
pub struct GrantLease;

/// Why an account did not grant a lease (or could not refresh).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("account is {0}")]
    Unusable(&'static str),
    #[error("the access token expired and its refresh did not finish in time")]
    RefreshPending,
    /// The refresh failed; the text is safe to show (no secret).
    #[error("the token refresh failed: {0}")]
    RefreshFailed(String),
}

/// Sent by a [`Lease`] when it ends, exactly once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    pub outcome: Outcome,
    /// The token version the lease was granted with: a 401 on a replaced token is stale.
    pub token_version: i64,
}

/// The upstream answered 401 to `lease`: refresh (once per token version, however many
/// requests report it) and grant a lease with the new token for one retry. The old lease's slot
/// is released without an outcome.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, Refusal>")]
pub struct RenewAfterUnauthorized {
    pub lease: Lease,
}

/// Refresh now (operator request), joining a refresh that is already running.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct RefreshNow;

/// The store holds a new version of this account.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReplaceCredentials(pub AccountCredentials);

/// Stops the actor: the account left the store.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Queries the account's current state.
#[derive(Debug, Message)]
#[rtype(result = "AccountStatus")]
pub struct GetAccountStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatus {
    pub id: AccountId,
    pub state: AccountState,
    pub in_flight: usize,
    /// A token refresh is running.
    pub refreshing: bool,
    /// The last failed upstream call, for operators: what happened and when (unix seconds).
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub message: String,
    pub at: i64,
}

/// Told to the router whenever the account starts or stops being usable.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AccountStateChanged {
    pub id: AccountId,
    pub usable: bool,
}
