//! Messages an [`AccountActor`](super::AccountActor) answers.

use actix::Message;

use super::state::AccountState;
use crate::lease::{Lease, Outcome};
use crate::types::{AccountCredentials, AccountId};

/// Asks for the right to make one upstream call.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, Refusal>")]
pub struct GrantLease;

/// Why an account did not grant a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("account is {0}")]
    Unusable(&'static str),
}

/// Sent by a [`Lease`] when it ends, exactly once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    pub outcome: Outcome,
}

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
