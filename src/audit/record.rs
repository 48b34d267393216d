//! What one audit row says: a data-plane request or an administrative act, as plain owned data.
//! Never content and never a secret: ids, names an operator chose, bounded client text, masked
//! emails. Its fields in declaration order are the row's canonical content, the text its hash
//! seals (`canonical.rs`).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Which kind of event a row records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One data-plane request (`/v1/…`), answered or refused.
    #[default]
    Request,
    /// One administrative act: the admin API, the CLI, or the relay itself on an account.
    Admin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Admin => "admin",
        }
    }
}

/// Who performed an administrative act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An admin token on the admin API (`actor_id`: the token's id, `actor_name`: its name).
    AdminToken,
    /// The command line (`actor_name`: the operating-system user that ran it).
    Cli,
    /// The relay on its own (a token refresh that failed, an account that needs a new login).
    Relay,
    /// A caller the admin API did not authenticate (a refused call).
    Unauthenticated,
}

impl ActorKind {
    /// The name serde gives it (the canonical content writes it by this name).
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::AdminToken => "admin_token",
            ActorKind::Cli => "cli",
            ActorKind::Relay => "relay",
            ActorKind::Unauthenticated => "unauthenticated",
        }
    }
}

/// One audit row's fields. A field that does not apply to its kind is `None` and left out of the
/// content. New fields go at the end, optional, so every row written before still verifies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub kind: Kind,
    /// `responses.create`, `models.list` for requests; `key.create`, `account.disable`,
    /// `admin.refused` … for acts.
    pub action: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<CompactString>,
    /// `POST /v1/responses`: the method and path the client called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_requested: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_served: Option<CompactString>,
    /// The account that served the request (or the last one tried), or an act's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<CompactString>,
    /// Every account tried, in order (failover), by the relay's ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts_tried: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// How a stream ended: `completed`, `failed`, `incomplete`, `client_gone`, `cut` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_outcome: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_kind: Option<ActorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<CompactString>,
    /// What an act was done to: an account, key, tenant or admin token id, or a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<CompactString>,
    /// An act's result: `ok`, or the error code it failed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CompactString>,
    /// Content capture's sealed record of this request, when capture was on for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<CompactString>,
}

impl Record {
    /// The model a search by model finds: the one served, else the one asked.
    pub fn model(&self) -> Option<&str> {
        model_of(
            self.model_served.as_deref(),
            self.model_requested.as_deref(),
        )
    }

    /// An administrative act done now by `actor` (result `ok` until told otherwise).
    pub fn act(actor: ActorKind, action: impl Into<CompactString>) -> Record {
        Record {
            at_ms: now_ms(),
            kind: Kind::Admin,
            action: action.into(),
            actor_kind: Some(actor),
            result: Some("ok".into()),
            ..Record::default()
        }
    }
}

/// The model a row is searched by: the one served, else the one asked.
pub fn model_of<'a>(served: Option<&'a str>, requested: Option<&'a str>) -> Option<&'a str> {
    served.or(requested)
}

/// The wall clock in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A row as stored and shown: its place in the chain, its hash and its fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub seq: i64,
    #[serde(flatten)]
    pub record: Record,
    /// Empty when read back from a row's content, which the hash seals and so cannot hold.
    #[serde(default)]
    pub hash: String,
}

/// A `User-Agent` (or `originator` plus `User-Agent`) as the client's name and version:
/// `codex_cli_rs/0.50.0 (Mac OS 15; arm64)` → (`codex_cli_rs`, `0.50.0`).
pub fn client_of(
    originator: Option<&str>,
    user_agent: Option<&str>,
) -> (Option<CompactString>, Option<CompactString>) {
    let product = user_agent.and_then(|ua| ua.split_whitespace().next());
    let (ua_name, version) = match product.map(|p| p.split_once('/')) {
        Some(Some((name, version))) => (Some(name), Some(version)),
        Some(None) => (product, None),
        None => (None, None),
    };
    let bound = |text: &str| CompactString::from(crate::obs::bounded(text, CLIENT_TEXT));
    let name = originator.filter(|o| !o.is_empty()).or(ua_name);
    (
        name.map(bound),
        version.filter(|v| !v.is_empty()).map(bound),
    )
}

/// The longest client name or version kept.
const CLIENT_TEXT: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_named_by_originator_or_user_agent() {
        let ua = Some("codex_cli_rs/0.50.0 (Mac OS 15.1; arm64) iTerm");
        assert_eq!(
            client_of(None, ua),
            (Some("codex_cli_rs".into()), Some("0.50.0".into()))
        );
        assert_eq!(
            client_of(Some("codex_vscode"), ua),
            (Some("codex_vscode".into()), Some("0.50.0".into()))
        );
        assert_eq!(client_of(None, Some("curl")), (Some("curl".into()), None));
        assert_eq!(client_of(None, None), (None, None));
    }
}
