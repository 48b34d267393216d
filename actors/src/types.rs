//! Plain data shared by the actors and their ports.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::account::health::Health;
use crate::account::quota::QuotaSnapshot;
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
    /// How the router weighs the account against the others (set by the operator).
    pub routing: RoutingParams,
    /// The pool state the store remembered; the actor starts from it and owns it afterwards.
    pub pool: PoolRecord,
    /// Changes whenever the stored row or token set changes.
    pub version: i64,
    /// The ChatGPT plan (`plus`, `pro`, …) when known: it decides which models the account serves.
    pub plan: Option<String>,
    /// The token set's own version: bumped by every stored refresh, import or login; the
    /// compare-and-swap key of a refresh.
    pub token_version: i64,
    /// The access token's `exp`, unix seconds.
    pub expires_at: Option<i64>,
    /// When the token set was last refreshed, unix seconds.
    pub last_refresh: Option<i64>,
}

/// The operator's routing parameters of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingParams {
    /// Higher priorities are used first; lower ones only when no higher account can serve.
    pub priority: i32,
    /// Relative share: scales headroom (`headroom`) and turns (`round_robin`). At least 1.
    pub weight: u32,
    /// Concurrent upstream calls allowed on the account; `None` takes `routing.max_in_flight`.
    pub max_in_flight: Option<u32>,
}

impl Default for RoutingParams {
    fn default() -> Self {
        RoutingParams {
            priority: 0,
            weight: 1,
            max_in_flight: None,
        }
    }
}

/// What survives a restart of an account's pool state: its health and last quota snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolRecord {
    pub health: Health,
    pub quota: Option<QuotaSnapshot>,
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("id", &self.id)
            .field("admin", &self.admin)
            .field("routing", &self.routing)
            .field("auth", &self.auth)
            .field("version", &self.version)
            .field("plan", &self.plan)
            .field("token_version", &self.token_version)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
