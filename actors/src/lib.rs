//! codex-relay's actors.
//!
//! Each Codex OAuth account of the pool is owned by one [`AccountActor`]: it holds the account's
//! credentials and state (operator intent, login, health) and *grants* upstream calls as
//! [`Lease`]s. The [`RouterActor`] keeps one supervised AccountActor per account in the store
//! (reconciling every few seconds through the [`AccountSource`] port) and answers [`Acquire`]
//! with a lease from the best account for the request (strategy, conversation affinity). While
//! that account serves plainly, [`Leases`] takes the lease on the caller's thread instead, from
//! what the actors publish (each account's gate, the router's lane): the actors then hear only of
//! endings that change something.
//!
//! Why leases: awc clients and responses are `!Send`, and an actor reply must be `Send`; streaming
//! through an actor would also funnel every byte through one thread. So the request handler makes
//! the upstream call itself with the lease and reports the outcome back — exactly once, also when
//! the client goes away (the lease reports on drop).
//!
//! This crate knows nothing of HTTP or SQLite; it declares the ports it needs in [`ports`].

pub mod account;
mod config;
pub mod ports;
pub mod router;
pub mod state;
mod types;

pub use account::call::{CallCredentials, Outcome, UpstreamFacts};
pub use account::counts::{AccountCounts, BreakerCounts, RefreshCounts};
pub use account::lease::{Lease, Placement, Refusal};
pub use account::messages::{AccountStatus, AccountView, LastError};
pub use account::AccountActor;
pub use config::{PoolConfig, Strategy};
pub use ports::{
    AccountSource, HealthProber, PoolStateSink, ProbeResult, ProbeTarget, RefreshAttempt,
    SaveAttempt, SourceError, TokenRefresher,
};
pub use router::messages::{
    Acquire, AcquireError, GetAccountStatuses, GetPoolStatus, JudgeExhaustion, PoolStatus,
    Reconcile, RefreshAccount, RefreshError, Shutdown, SyncNow,
};
pub use router::{Leases, RouterActor};
pub use state::health::{Availability, Breaker, Cooling, CoolingReason, Health, HealthPolicy};
pub use state::quota::{QuotaSnapshot, QuotaWindow};
pub use state::refresh::RefreshPolicy;
pub use state::{AccountState, AdminState, AuthState};
pub use types::{AccountCredentials, AccountId, PoolRecord, RefreshedTokens, RoutingParams};
