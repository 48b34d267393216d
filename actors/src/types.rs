//! Plain data shared by the actors and their ports.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::account::state::{AdminState, AuthState};

/// The relay's own id of an account (not the ChatGPT account id).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(Arc<str>);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AccountId {
    fn from(id: &str) -> Self {
        AccountId(Arc::from(id))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

/// What an account's actor serves with: loaded from the store, replaced whole when it changes.
#[derive(Clone)]
pub struct AccountCredentials {
    pub id: AccountId,
    /// Sent upstream as `ChatGPT-Account-ID`.
    pub chatgpt_account_id: String,
    pub access_token: SecretString,
    /// Adds `X-OpenAI-Fedramp: true` upstream.
    pub is_fedramp: bool,
    /// What the operator wants of the account (active, disabled, draining).
    pub admin: AdminState,
    /// Whether the stored login still works (a persisted `ReauthRequired` survives restarts).
    pub auth: AuthState,
    /// Changes whenever the stored row or token set changes.
    pub version: i64,
    /// The token set's own version: bumped by every stored refresh, import or login; the
    /// compare-and-swap key of a refresh.
    pub token_version: i64,
    /// The access token's `exp`, unix seconds.
    pub expires_at: Option<i64>,
    /// When the token set was last refreshed, unix seconds.
    pub last_refresh: Option<i64>,
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("id", &self.id)
            .field("admin", &self.admin)
            .field("auth", &self.auth)
            .field("version", &self.version)
            .field("token_version", &self.token_version)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
