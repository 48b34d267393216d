//! Messages an [`AccountActor`](super::AccountActor) answers, and what it tells its router.

use std::time::SystemTime;

use actix::Message;

use super::counts::AccountCounts;
use super::lease::{Lease, Refusal};
use crate::state::health::Availability;
use crate::state::quota::QuotaSnapshot;
use crate::state::AccountState;
use crate::types::{AccountCredentials, AccountId, RoutingParams};

/// Asks for the right to make one upstream call.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, Refusal>")]
pub struct GrantLease;

/// Refresh now (operator request), joining a refresh that is already running.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct RefreshNow;

/// The store holds a new version of this account.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReplaceCredentials(pub AccountCredentials);

/// Stops the actor: the account left the store, or the relay stops. Answered once it stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Checks the account upstream now if it waits for a probe (the router's probe timer).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ProbeNow;

/// Queries the account's current state.
#[derive(Debug, Message)]
#[rtype(result = "AccountView")]
pub struct GetAccountStatus;

/// The account as the router and the operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub id: AccountId,
    pub state: AccountState,
    pub in_flight: usize,
    /// The effective cap on calls in flight; 0 means none.
    pub max_in_flight: usize,
    pub routing: RoutingParams,
    pub quota: Option<QuotaSnapshot>,
    /// A half-open probe is in flight.
    pub probing: bool,
    /// A token refresh is running.
    pub refreshing: bool,
    /// The account serves with a rotated token set the store has not taken yet (it is written
    /// again until it lands; the stored refresh token is spent).
    pub tokens_unsaved: bool,
    /// The last failed upstream call, for operators: what happened and when (unix seconds).
    pub last_error: Option<LastError>,
    /// When the access token it serves with expires (unix seconds), when known.
    pub token_expires_at: Option<i64>,
    /// Breaker moves and refresh results since the actor started.
    pub counts: AccountCounts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub message: String,
    pub at: i64,
}

/// Older name of [`AccountView`].
pub type AccountStatus = AccountView;

impl AccountView {
    pub fn availability(&self, now: SystemTime) -> Availability {
        self.state.health.availability(now)
    }

    /// The account would grant a lease at `now`, capacity aside.
    pub fn serves_at(&self, now: SystemTime) -> bool {
        self.state.serves_at(now)
            && !(self.probing && self.availability(now) == Availability::HalfOpen)
    }

    pub fn is_full(&self) -> bool {
        self.max_in_flight > 0 && self.in_flight >= self.max_in_flight
    }

    /// Percent of quota left in the tightest window; 100 when not known yet.
    pub fn remaining_percent(&self) -> f64 {
        self.quota.map_or(100.0, |q| q.remaining_percent())
    }
}

/// Told to the router whenever the account's view changes (state, health, in-flight, quota).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AccountStateChanged {
    pub view: AccountView,
}
