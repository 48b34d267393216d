//! The account's state: orthogonal parts, each a pure function of events, composed here.
//!
//! ```text
//!   admin (operator intent, from the store):  Active ◄──► Disabled
//!                                               │  ▲
//!                                     drain     ▼  │ enable
//!                                             Draining   (finishes in-flight calls, takes no new)
//!
//!   auth (is the login still good?): see `auth.rs` — Valid or ReauthRequired { reason }
//! ```
//! An account is usable — granted leases — only when every part allows it. A 401 on a token
//! version the account has already replaced is stale and changes nothing; a 401 on the current
//! token (after the handler's one refresh-and-retry) means the login needs a human.

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

pub use super::auth::AuthState;
use super::auth::REJECTED_AFTER_REFRESH;

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub admin: AdminState,
    pub auth: AuthState,
}

/// Something that happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// The store holds a new version of the account: the operator's intent, and the login state
    /// that goes with it (`None` keeps the current one: the tokens did not change).
    CredentialsReplaced {
        admin: AdminState,
        auth: Option<AuthState>,
    },
    /// An upstream call with the current token ended with this HTTP status.
    UpstreamStatus(u16),
    /// The login cannot be refreshed any more.
    RefreshRejected { reason: String },
}

impl AccountState {
    pub fn initial(admin: AdminState) -> AccountState {
        AccountState::new(admin, AuthState::Valid)
    }

    pub fn new(admin: AdminState, auth: AuthState) -> AccountState {
        AccountState { admin, auth }
    }

    pub fn is_usable(&self) -> bool {
        self.admin == AdminState::Active && self.auth == AuthState::Valid
    }

    /// The state after `event`.
    pub fn apply(&self, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::CredentialsReplaced { admin, auth } => AccountState {
                admin: *admin,
                auth: auth.clone().unwrap_or_else(|| self.auth.clone()),
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
            admin: self.admin,
            auth: AuthState::ReauthRequired {
                reason: reason.to_owned(),
            },
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
}
