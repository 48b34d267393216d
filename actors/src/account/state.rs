//! The account's state machine: pure transitions of `(state, event)`, tested without actors.
//!
//! ```text
//!            operator disables                    operator enables
//!   Active ────────────────────────► Disabled ─────────────────────► Active
//!     │
//!     │ upstream answers 401 (the access token is no longer accepted)
//!     ▼
//!   ReauthRequired ── new credentials stored (import / login) ──► Active
//! ```
//! New credentials from the store always decide between `Active` and `Disabled` afresh.

/// Where an account stands; only `Active` accounts are granted leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    Active,
    Disabled,
    ReauthRequired { reason: String },
}

/// Something that happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// The store holds a new version of the account (`enabled` as the operator left it).
    CredentialsReplaced { enabled: bool },
    /// An upstream call ended with this HTTP status.
    UpstreamStatus(u16),
}

impl AccountState {
    pub fn initial(enabled: bool) -> AccountState {
        if enabled {
            AccountState::Active
        } else {
            AccountState::Disabled
        }
    }

    pub fn is_usable(&self) -> bool {
        matches!(self, AccountState::Active)
    }

    /// The state after `event`.
    pub fn apply(&self, event: &AccountEvent) -> AccountState {
        match (self, event) {
            (_, AccountEvent::CredentialsReplaced { enabled }) => AccountState::initial(*enabled),
            (AccountState::Active, AccountEvent::UpstreamStatus(401)) => {
                AccountState::ReauthRequired {
                    reason: "the upstream rejected the access token; import a fresh auth.json or log the account in again".to_owned(),
                }
            }
            (state, AccountEvent::UpstreamStatus(_)) => state.clone(),
        }
    }

    /// A short name for logs and listings.
    pub fn name(&self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Disabled => "disabled",
            AccountState::ReauthRequired { .. } => "reauth_required",
        }
    }
}
