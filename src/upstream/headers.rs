//! Which headers cross the relay, in each direction: those the Codex CLI sends with a turn, and
//! those of the backend's answer it reads.
//!
//! Towards the upstream: the Codex session, turn and feature headers a client sends, passed
//! through verbatim; credentials are always the relay's own (the client's Authorization, cookies
//! and any fedramp claim never cross). Back to the client: the upstream's turn state, model and
//! request ids — not its rate-limit family, which describes the pool account that served (the
//! caller's limits are written instead, `shown_limits`).

use actix_web::http::header::{HeaderMap, HeaderName};

use super::shown_limits::is_account_limit;

/// Exact names passed from client to upstream.
const FORWARD_EXACT: [&str; 5] = [
    "session_id",
    "session-id",
    "thread-id",
    "x-client-request-id",
    "openai-beta",
];

/// Exact names passed from upstream back to the client.
const RETURN_EXACT: [&str; 5] = [
    "openai-model",
    "x-models-etag",
    "x-reasoning-included",
    "x-request-id",
    "x-oai-request-id",
];

/// True for a client header the upstream should see as the client sent it.
///
/// Never the client's trace context (`traceparent`, `tracestate`, `baggage`), nor one of the
/// relay's: the Codex backend is a third party, and trace ids and vendors' state would tell it
/// about the client's internal traces and services. A trace ends at the relay, which logs it.
pub fn forwarded_to_upstream(name: &HeaderName) -> bool {
    let name = name.as_str();
    if name == "x-openai-fedramp" {
        return false;
    }
    FORWARD_EXACT.contains(&name) || name.starts_with("x-codex-") || name.starts_with("x-openai-")
}

/// True for an upstream response header the client should see.
pub fn returned_to_client(name: &HeaderName) -> bool {
    let name = name.as_str();
    RETURN_EXACT.contains(&name) || (name.starts_with("x-codex-") && !is_account_limit(name))
}

/// The client's value of `name`, if it is valid text.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &'static str) -> HeaderName {
        HeaderName::from_static(n)
    }

    #[test]
    fn codex_session_headers_go_up_and_credentials_do_not() {
        for ok in [
            "session_id",
            "session-id",
            "thread-id",
            "x-codex-turn-state",
            "x-codex-window-id",
            "x-openai-subagent",
            "x-openai-internal-codex-responses-lite",
            "openai-beta",
        ] {
            assert!(forwarded_to_upstream(&name(ok)), "{ok}");
        }
        for no in [
            "authorization",
            "cookie",
            "chatgpt-account-id",
            "x-openai-fedramp",
            "host",
            "x-stainless-retry-count",
            "content-length",
            "traceparent",
            "tracestate",
            "baggage",
        ] {
            assert!(!forwarded_to_upstream(&name(no)), "{no}");
        }
    }

    #[test]
    fn turn_headers_come_back_and_the_account_limits_do_not() {
        for ok in [
            "x-codex-turn-state",
            "x-codex-upcoming-feature",
            "openai-model",
            "x-request-id",
            "x-models-etag",
        ] {
            assert!(returned_to_client(&name(ok)), "{ok}");
        }
        for no in [
            "x-codex-primary-used-percent",
            "x-codex-credits-balance",
            "set-cookie",
            "content-length",
            "cf-ray",
            "transfer-encoding",
        ] {
            assert!(!returned_to_client(&name(no)), "{no}");
        }
    }
}
