//! Who a request came from, the same way on both planes: what the access line names.

use std::sync::Arc;

/// The credential a request authenticated with (put in its extensions by the plane's guard).
#[derive(Debug, Clone)]
pub enum Caller {
    /// A data-plane API key, and the tenant it belongs to if any.
    ApiKey {
        key_id: Arc<str>,
        tenant_id: Option<String>,
    },
    /// An admin-plane token.
    AdminToken { token_id: Arc<str> },
}

impl Caller {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Caller::ApiKey { key_id, .. } => Some(key_id),
            Caller::AdminToken { .. } => None,
        }
    }

    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Caller::ApiKey { tenant_id, .. } => tenant_id.as_deref(),
            Caller::AdminToken { .. } => None,
        }
    }

    pub fn admin_token_id(&self) -> Option<&str> {
        match self {
            Caller::AdminToken { token_id } => Some(token_id),
            Caller::ApiKey { .. } => None,
        }
    }
}
