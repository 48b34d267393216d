//! The `auth` part of an account's state: is its login still accepted?
//!
//! ```text
//!   Valid ──permanent refresh failure / 401 on a fresh token──► ReauthRequired { reason }
//!     ▲                                                              │
//!     └──────────── new credentials stored (import, login) ──────────┘
//! ```
//! The reason says what the operator must do; it is persisted with the account, so a restart
//! does not put a dead login back into rotation.

/// Whether the account's login is still accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    Valid,
    ReauthRequired { reason: String },
}

impl AuthState {
    pub fn is_valid(&self) -> bool {
        *self == AuthState::Valid
    }

    /// The reason to show operators, when the login needs a human.
    pub fn reason(&self) -> Option<&str> {
        match self {
            AuthState::Valid => None,
            AuthState::ReauthRequired { reason } => Some(reason),
        }
    }
}

/// What an operator reads when an upstream rejects a token that was just refreshed.
pub const REJECTED_AFTER_REFRESH: &str =
    "the upstream rejected a freshly refreshed access token (401); log the account in again \
     (codex-relay account login) or import a fresh auth.json";
