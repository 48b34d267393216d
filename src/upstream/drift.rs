//! Upstream drift: an SSE event type, a response header of the families the relay reads
//! (`x-codex-*`, `openai-*`) or an error code that the relay does not know. The relay passes it
//! through unchanged (relaxed), counts it in `codex_relay_upstream_unknown_total{kind, name}`
//! and logs it once per kind and name, so that an operator learns of a backend change from the
//! relay before users report a break.
//!
//! Known names are decided by `match` on the request path, so a known event, header or code
//! costs a comparison; only an unknown one takes the lock that remembers what was seen. Labels
//! are bounded: at most [`NAMES_PER_KIND`] distinct names per kind, then `name="other"`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::http::header::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use slog::{warn, Logger};

use super::shown_limits::is_account_limit;
use crate::obs::bounded;
use crate::obs::metrics::Text;

/// Distinct names counted per kind before the rest are counted as `other`.
pub const NAMES_PER_KIND: usize = 64;
/// The longest name kept (upstream text, bounded like every other).
const NAME_LIMIT: usize = 96;

/// What kind of thing the upstream sent.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum DriftKind {
    Event,
    Header,
    Error,
}

impl DriftKind {
    fn label(self) -> &'static str {
        match self {
            DriftKind::Event => "event",
            DriftKind::Header => "header",
            DriftKind::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnknownLabels {
    kind: &'static str,
    name: Text<Arc<str>>,
}

/// Counts and logs what the upstream sent that the relay does not know. Cheap to clone.
#[derive(Clone)]
pub struct Drift(Arc<Inner>);

struct Inner {
    unknown: Family<UnknownLabels, Counter>,
    /// The names seen so far, per kind (each logged once when first seen).
    seen: Mutex<HashSet<(DriftKind, Arc<str>)>>,
    log: Logger,
}

impl Drift {
    /// Registers `upstream_unknown_total` on `registry`.
    pub fn register(registry: &mut Registry, log: Logger) -> Drift {
        let unknown = Family::<UnknownLabels, Counter>::default();
        registry.register(
            "upstream_unknown",
            "Upstream SSE event types, response headers and error codes the relay does not know, passed through",
            unknown.clone(),
        );
        Drift(Arc::new(Inner {
            unknown,
            seen: Mutex::new(HashSet::new()),
            log,
        }))
    }

    /// Notes an event type; costs a comparison when it is known.
    pub fn event(&self, kind: &str) {
        if !known_event(kind) {
            self.noticed(DriftKind::Event, kind);
        }
    }

    /// Notes every header of the families the relay reads that it does not know.
    pub fn headers(&self, headers: &HeaderMap) {
        for name in headers.keys() {
            let name = name.as_str();
            let watched = name.starts_with("x-codex-") || name.starts_with("openai-");
            if watched && !known_header(name) {
                self.noticed(DriftKind::Header, name);
            }
        }
    }

    /// Notes an error code of a refusal or of a `response.failed` event.
    pub fn error_code(&self, code: &str) {
        if !known_error(code) {
            self.noticed(DriftKind::Error, code);
        }
    }

    fn noticed(&self, kind: DriftKind, name: &str) {
        let name = bounded(name, NAME_LIMIT);
        let label = {
            let mut seen = self.0.seen.lock().unwrap_or_else(|e| e.into_inner());
            let key = (kind, Arc::<str>::from(name.as_ref()));
            if seen.contains(&key) {
                key.1
            } else if seen.iter().filter(|(k, _)| *k == kind).count() < NAMES_PER_KIND {
                seen.insert(key.clone());
                warn!(self.0.log, "the upstream sent something the relay does not know; passed through";
                    "kind" => kind.label(), "name" => name.as_ref());
                key.1
            } else {
                Arc::from("other")
            }
        };
        let labels = UnknownLabels {
            kind: kind.label(),
            name: Text(label),
        };
        self.0.unknown.get_or_create(&labels).inc();
    }
}

/// The Responses stream events the relay and its clients know (the Codex CLI's handlers and the
/// OpenAI SDKs' event union), the most frequent first.
fn known_event(kind: &str) -> bool {
    matches!(
        kind,
        "response.output_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_text.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
            | "response.output_item.added"
            | "response.output_item.done"
            | "response.content_part.added"
            | "response.content_part.done"
            | "response.output_text.done"
            | "response.output_text.annotation.added"
            | "response.refusal.delta"
            | "response.refusal.done"
            | "response.function_call_arguments.done"
            | "response.custom_tool_call_input.done"
            | "response.reasoning_summary_part.added"
            | "response.reasoning_summary_part.done"
            | "response.reasoning_summary_text.done"
            | "response.reasoning_text.done"
            | "response.created"
            | "response.in_progress"
            | "response.queued"
            | "response.completed"
            | "response.failed"
            | "response.incomplete"
            | "response.metadata"
            | "response.web_search_call.in_progress"
            | "response.web_search_call.searching"
            | "response.web_search_call.completed"
            | "response.image_generation_call.in_progress"
            | "response.image_generation_call.generating"
            | "response.image_generation_call.partial_image"
            | "response.image_generation_call.completed"
            | "codex.response.metadata"
            | "codex.rate_limits"
            | "responsesapi.websocket_timing"
            | "keepalive"
            | "error"
    )
}

/// The `x-codex-*` and `openai-*` response headers the relay and the Codex CLI know: the
/// rate-limit family of any limit (`x-codex[-<id>]-primary-used-percent`, credits …) and these.
fn known_header(name: &str) -> bool {
    is_account_limit(name)
        || matches!(
            name,
            "x-codex-turn-state"
                | "x-codex-safety-buffering-enabled"
                | "x-codex-safety-buffering-faster-model"
                | "x-codex-websocket-max-message-bytes"
                | "openai-model"
                | "openai-processing-ms"
                | "openai-version"
                | "openai-organization"
                | "openai-project"
        )
}

/// Error codes (or `error.type` where the backend puts it there) the relay and the Codex CLI
/// know.
fn known_error(code: &str) -> bool {
    matches!(
        code,
        "server_is_overloaded"
            | "slow_down"
            | "rate_limit_exceeded"
            | "usage_limit_reached"
            | "usage_not_included"
            | "insufficient_quota"
            | "context_length_exceeded"
            | "invalid_prompt"
            | "invalid_request_error"
            | "invalid_encrypted_content"
            | "previous_response_not_found"
            | "cyber_policy"
            | "bio_policy"
            | "misalignment_policy_violation"
            | "websocket_connection_limit_reached"
            | "server_error"
            | "token_expired"
            | "invalid_api_key"
            | "model_not_found"
            | "unsupported_parameter"
            | "invalid_value"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::metrics::encode_text;
    use slog::o;

    fn drift() -> (Drift, Registry) {
        let mut registry = crate::obs::metrics::registry();
        let drift = Drift::register(&mut registry, Logger::root(slog::Discard, o!()));
        (drift, registry)
    }

    #[test]
    fn known_names_are_not_counted_and_unknown_ones_are() {
        let (drift, registry) = drift();
        drift.event("response.output_text.delta");
        drift.event("response.brand_new");
        drift.event("response.brand_new");
        drift.error_code("server_is_overloaded");
        drift.error_code("new_code");
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-codex-primary-used-percent", "1"),
            ("x-codex-other-secondary-reset-at", "1"),
            ("x-codex-brand-new", "1"),
            ("x-request-id", "r"),
        ] {
            headers.insert(name.parse().unwrap(), value.parse().unwrap());
        }
        drift.headers(&headers);
        let text = encode_text(&registry).unwrap();
        assert!(text.contains(
            r#"codex_relay_upstream_unknown_total{kind="event",name="response.brand_new"} 2"#
        ));
        assert!(text.contains(r#"{kind="error",name="new_code"} 1"#));
        assert!(text.contains(r#"{kind="header",name="x-codex-brand-new"} 1"#));
        assert_eq!(
            text.matches("codex_relay_upstream_unknown_total{").count(),
            3
        );
    }

    #[test]
    fn names_beyond_the_cap_are_counted_as_other() {
        let (drift, registry) = drift();
        for i in 0..NAMES_PER_KIND + 10 {
            drift.event(&format!("x.{i}"));
        }
        let text = encode_text(&registry).unwrap();
        assert!(text.contains(r#"{kind="event",name="other"} 10"#), "{text}");
        let series = text.matches("codex_relay_upstream_unknown_total{").count();
        assert_eq!(series, NAMES_PER_KIND + 1);
    }
}
