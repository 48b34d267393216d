//! The account's state machines: orthogonal parts, each a pure function of events (no actor, no
//! I/O), composed here — and the rules the actors apply with them: when a token needs refreshing
//! ([`refresh`]) and what the upstream says about the account's quota ([`quota`]).
//!
//! ```text
//!   admin (operator intent, from the store):  Active ◄──► Disabled
//!                                               │  ▲
//!                                     drain     ▼  │ enable
//!                                             Draining   (finishes in-flight calls, takes no new)
//!
//!   auth (is the login still good?): see `auth.rs` — Valid or ReauthRequired { reason }
//!
//!   health (cooldown and circuit breaker, time-based): see [`health`].
//! ```
//! An account is usable — granted leases — only when every part allows it. New credentials from
//! the store restate the operator's intent and start the login afresh; a stored change that
//! keeps the credentials (operator intent, routing parameters) keeps the login's verdict. Health
//! belongs to the ChatGPT account, not to its credentials: it survives both.

use std::time::SystemTime;

pub mod auth;
pub mod health;
pub mod quota;
pub mod refresh;

use self::health::{Availability, Health};

/// What the operator wants of the account; stored in `accounts.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Active,
    Disabled,
    /// Calls in flight finish; no new ones are granted.
    Draining,
}

impl AdminState {
    /// The stored name (`active`, `disabled`, `draining`); `None` for anything else.
    pub fn parse(name: &str) -> Option<AdminState> {
        match name {
            "active" => Some(AdminState::Active),
            "disabled" => Some(AdminState::Disabled),
            "draining" => Some(AdminState::Draining),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AdminState::Active => "active",
            AdminState::Disabled => "disabled",
            AdminState::Draining => "draining",
        }
    }
}

pub use self::auth::AuthState;
use self::auth::REJECTED_AFTER_REFRESH;

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub admin: AdminState,
    pub auth: AuthState,
    pub health: Health,
}

/// Something that happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// The store holds a new login for the account: the operator's intent and the login state
    /// stored with it.
    CredentialsReplaced { admin: AdminState, auth: AuthState },
    /// The store holds a new version of the account with the same credentials.
    AdminChanged { admin: AdminState },
    /// An upstream call with the current token ended with this HTTP status.
    UpstreamStatus(u16),
    /// The login cannot be refreshed any more.
    RefreshRejected { reason: String },
}

impl AccountState {
    pub fn initial(admin: AdminState) -> AccountState {
        AccountState {
            admin,
            auth: AuthState::Valid,
            health: Health::default(),
        }
    }

    /// Operator intent and login allow serving (health aside; see [`AccountState::serves_at`]).
    pub fn is_usable(&self) -> bool {
        self.admin == AdminState::Active && self.auth == AuthState::Valid
    }

    /// Every part allows a call at `now` (a half-open breaker counts: it admits one probe).
    pub fn serves_at(&self, now: SystemTime) -> bool {
        self.is_usable()
            && matches!(
                self.health.availability(now),
                Availability::Ready | Availability::HalfOpen
            )
    }

    /// The state after `event`.
    pub fn apply(&self, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::CredentialsReplaced { admin, auth } => AccountState {
                admin: *admin,
                auth: auth.clone(),
                health: self.health,
            },
            AccountEvent::AdminChanged { admin } => AccountState {
                admin: *admin,
                ..self.clone()
            },
            AccountEvent::UpstreamStatus(401) if self.auth.is_valid() => {
                self.reauth(REJECTED_AFTER_REFRESH)
            }
            AccountEvent::UpstreamStatus(_) => self.clone(),
            AccountEvent::RefreshRejected { reason } => self.reauth(reason),
        }
    }

    fn reauth(&self, reason: &str) -> AccountState {
        AccountState {
            auth: AuthState::ReauthRequired {
                reason: reason.to_owned(),
            },
            ..self.clone()
        }
    }

    /// A short name for logs and listings: the part that keeps the account out, operator intent
    /// first.
    pub fn name(&self) -> &'static str {
        match (&self.admin, &self.auth) {
            (AdminState::Disabled | AdminState::Draining, _) => self.admin.name(),
            (AdminState::Active, AuthState::ReauthRequired { .. }) => "reauth_required",
            (AdminState::Active, AuthState::Valid) => "active",
        }
    }

    /// Like [`AccountState::name`], with the health part at `now` when it is what keeps the
    /// account out: `cooling`, `circuit_open`, `circuit_half_open`.
    pub fn name_at(&self, now: SystemTime) -> &'static str {
        if !self.is_usable() {
            return self.name();
        }
        match self.health.availability(now) {
            Availability::Ready => "active",
            Availability::Cooling { .. } => "cooling",
            Availability::Open { .. } => "circuit_open",
            Availability::HalfOpen => "circuit_half_open",
        }
    }
}
