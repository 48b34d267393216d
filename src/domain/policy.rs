//! What governs a caller: the limits of its key and of the key's tenant, the models it may use,
//! and when the key expires; and a key's or tenant's settings as an operator sets them. Plain
//! data: the store loads and saves it, governance enforces it.

use std::sync::Arc;

use serde::Serialize;

/// Limits of a key or a tenant; `None` means "no limit of this kind here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Requests per minute (GCRA).
    pub rpm: Option<u32>,
    /// Requests that may arrive at once before the rate applies; defaults to `rpm`.
    pub burst: Option<u32>,
    /// Requests in progress at once (a stream counts until it ends).
    pub max_concurrent: Option<u32>,
    /// Tokens per UTC day, counted from `response.completed` usage.
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month.
    pub monthly_tokens: Option<u64>,
}

/// A tenant: a team that owns keys and shares their limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub id: String,
    /// Shared, not copied, by every request that names it (the metrics' `tenant` label).
    pub name: Arc<str>,
    pub limits: Limits,
    /// Model names the tenant's keys neither see nor use.
    pub hidden_models: Vec<String>,
}

/// An API key's policy, its tenant's included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub id: Arc<str>,
    pub name: String,
    pub tenant: Option<Arc<TenantPolicy>>,
    /// Unix seconds after which the key no longer authenticates.
    pub expires_at: Option<i64>,
    /// The models this key may use (by name asked or by the slug an alias resolves to); `None`
    /// allows every model the relay offers.
    pub models: Option<Vec<String>>,
    pub limits: Limits,
}

impl KeyPolicy {
    /// A key with no tenant, no allow-list and no limits of its own.
    pub fn unrestricted(id: &str) -> KeyPolicy {
        KeyPolicy {
            id: Arc::from(id),
            name: id.to_owned(),
            tenant: None,
            expires_at: None,
            models: None,
            limits: Limits::default(),
        }
    }

    pub fn is_expired(&self, now_unix: i64) -> bool {
        self.expires_at.is_some_and(|at| now_unix >= at)
    }

    /// True when `name` is hidden from this key's tenant.
    pub fn tenant_hides(&self, name: &str) -> bool {
        self.tenant
            .as_ref()
            .is_some_and(|t| t.hidden_models.iter().any(|m| m == name))
    }

    /// True when the allow-list (if any) names `asked` or the slug it resolves to.
    pub fn allows(&self, asked: &str, slug: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == asked || m == slug))
    }
}

/// A tenant's settings after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub limits: Limits,
    pub hidden_models: Vec<String>,
}

/// A key's settings after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    pub limits: Limits,
    pub models: Option<Vec<String>>,
    pub expires_at: Option<i64>,
}
