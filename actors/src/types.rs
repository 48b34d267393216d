//! Plain data shared by the actors and their ports.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::state::health::Health;
use crate::state::quota::QuotaSnapshot;
use crate::state::{AdminState, AuthState};

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

/// A token set the issuer rotated to. Once the issuer has answered, the refresh token it replaced
/// is spent: until the store holds this set, it is the only way back into the account, so it is
/// kept (in the account's actor) until a write lands. Every part is optional: the issuer may omit
/// any part of a refreshed set, and the parts present replace the stored ones.
#[derive(Clone)]
pub struct RefreshedTokens {
    /// The stored token version this set replaces: the compare-and-swap key of its write.
    pub replaces_version: i64,
    pub id_token: Option<SecretString>,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// The new access token's `exp`, unix seconds (`None` keeps the stored expiry).
    pub expires_at: Option<i64>,
    /// The plan and e-mail the new tokens name (`None` keeps the stored ones).
    pub plan: Option<String>,
    pub email: Option<String>,
    /// When the issuer answered, unix seconds: the set's `last_refresh`.
    pub refreshed_at: i64,
}

impl RefreshedTokens {
    /// This set, refreshed with the refresh token of `older` (a set the store never took), with
    /// the parts the issuer left out taken from `older`: written over the same stored version,
    /// it must carry everything `older` would have, above all a refresh token that is not spent.
    pub fn over(self, older: &RefreshedTokens) -> RefreshedTokens {
        RefreshedTokens {
            replaces_version: older.replaces_version,
            id_token: self.id_token.or_else(|| older.id_token.clone()),
            access_token: self.access_token.or_else(|| older.access_token.clone()),
            refresh_token: self.refresh_token.or_else(|| older.refresh_token.clone()),
            expires_at: self.expires_at.or(older.expires_at),
            plan: self.plan.or_else(|| older.plan.clone()),
            email: self.email.or_else(|| older.email.clone()),
            refreshed_at: self.refreshed_at,
        }
    }
}

impl fmt::Debug for RefreshedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshedTokens")
            .field("replaces_version", &self.replaces_version)
            .field("expires_at", &self.expires_at)
            .field("refreshed_at", &self.refreshed_at)
            .finish_non_exhaustive()
    }
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
