//! The account's state: orthogonal parts, each a pure function of events, composed here.
//!
//! ```text
//!   admin (operator intent, from the store):  Active ◄──► Disabled
//!                                               │  ▲
//!                                     drain     ▼  │ enable
//!                                             Draining   (finishes in-flight calls, takes no new)
//!
//!   auth (is the login still good?):          Valid ──upstream 401──► ReauthRequired { reason }
//!                                               ▲                              │
//!                                               └─── new credentials stored ───┘
//! ```
//! An account is usable — granted leases — only when every part allows it. New credentials from
//! the store restate the operator's intent and start the login afresh.

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

/// Whether the account's login is still accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    Valid,
    ReauthRequired { reason: String },
}

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub admin: AdminState,
    pub auth: AuthState,
}

/// Something that happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// The store holds a new version of the account (`admin` as the operator left it).
    CredentialsReplaced { admin: AdminState },
    /// An upstream call ended with this HTTP status.
    UpstreamStatus(u16),
}

impl AccountState {
    pub fn initial(admin: AdminState) -> AccountState {
        AccountState {
            admin,
            auth: AuthState::Valid,
        }
    }

    pub fn is_usable(&self) -> bool {
        self.admin == AdminState::Active && self.auth == AuthState::Valid
    }

    /// The state after `event`.
    pub fn apply(&self, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::CredentialsReplaced { admin } => AccountState::initial(*admin),
            AccountEvent::UpstreamStatus(401) if self.auth == AuthState::Valid => AccountState {
                admin: self.admin,
                auth: AuthState::ReauthRequired {
                    reason: "the upstream rejected the access token; import a fresh auth.json or log the account in again".to_owned(),
                },
            },
            AccountEvent::UpstreamStatus(_) => self.clone(),
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
