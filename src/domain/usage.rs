//! Whose usage is counted, and how much: the subjects quotas and rates are kept for (a key or a
//! tenant) and the token counts the relay reads from the upstream's `response.completed`.

use std::sync::Arc;

use serde::Deserialize;

/// Whose usage a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key,
    Tenant,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Tenant => "tenant",
        }
    }

    /// The scope a stored name stands for.
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "key" => Some(Scope::Key),
            "tenant" => Some(Scope::Tenant),
            _ => None,
        }
    }
}

/// A key or a tenant, by id.
pub type Subject = (Scope, Arc<str>);

/// The counts the relay itself reads (logs and quotas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}
