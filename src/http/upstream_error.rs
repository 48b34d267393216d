//! Upstream failures as client errors. The upstream's body is read for its error code and a short
//! message only; the code and message are redacted and bounded, the raw body never echoed.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use serde_json::Value;
use slog::warn;

use super::error::ApiError;
use crate::edge::context::RequestContext;
use crate::obs::{bounded, limit, redact_secrets};
use crate::upstream::headers::text;

/// Maps a non-200 upstream answer.
pub fn map(status: StatusCode, headers: &HeaderMap, body: &[u8], ctx: &RequestContext) -> ApiError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let code = error["code"]
        .as_str()
        .or(error["type"].as_str())
        .map(redact_secrets);
    warn!(ctx.log, "upstream answered with an error";
        "upstream_status" => status.as_u16(),
        "upstream_code" => code.as_deref().map(|c| bounded(c, limit::UPSTREAM_TEXT)));
    match status.as_u16() {
        429 if code.as_deref() == Some("usage_limit_reached") => ApiError::UsageLimitReached {
            retry_after_secs: retry_after(error, headers),
            resets_at: error["resets_at"].as_i64(),
        },
        429 => ApiError::UpstreamRateLimited {
            retry_after_secs: retry_after(error, headers),
        },
        401 | 403 => {
            ApiError::UpstreamFailed("the upstream rejected the relay account's credentials")
        }
        400..=499 => ApiError::UpstreamRejected {
            status,
            message: message_of(&parsed).unwrap_or_else(|| "no reason given".to_owned()),
            code,
        },
        _ => ApiError::UpstreamFailed("the upstream answered with a server error"),
    }
}

/// Seconds until the account's limit resets, from `resets_at`, `resets_in_seconds` or the header.
fn retry_after(error: &Value, headers: &HeaderMap) -> Option<u64> {
    let now = chrono::Utc::now().timestamp();
    error["resets_at"]
        .as_i64()
        .map(|at| (at - now).max(1) as u64)
        .or_else(|| error["resets_in_seconds"].as_u64())
        .or_else(|| text(headers, "retry-after").and_then(|v| v.trim().parse().ok()))
}

/// The upstream's human-readable reason: `detail` (Codex backend) or `error.message` (OpenAI).
fn message_of(body: &Value) -> Option<String> {
    let message = body["detail"]
        .as_str()
        .or(body["error"]["message"].as_str())?;
    // Redacted and bounded in one place, like every text a third party wrote.
    Some(redact_secrets(message))
}

/// Maps the error of a `response.failed` event (non-streaming answers only).
pub fn from_failed_event(error: &Value) -> ApiError {
    let code = error["code"].as_str().map(redact_secrets);
    let status = match code.as_deref() {
        Some("context_length_exceeded" | "invalid_prompt" | "cyber_policy") => {
            StatusCode::BAD_REQUEST
        }
        Some("rate_limit_exceeded" | "usage_limit_reached" | "insufficient_quota") => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Some("server_is_overloaded" | "slow_down") => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = error["message"]
        .as_str()
        .map(redact_secrets)
        .unwrap_or_else(|| "no reason given".to_owned());
    ApiError::ResponseFailed {
        status,
        message,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use slog::o;

    fn ctx() -> RequestContext {
        RequestContext {
            id: "r".into(),
            log: slog::Logger::root(slog::Discard, o!()),
            started: std::time::Instant::now(),
            trace: crate::edge::trace::Trace::start(),
        }
    }

    #[test]
    fn a_backend_400_keeps_its_reason_but_not_its_secrets() {
        let body = json!({"detail": "Unsupported parameter: max_output_tokens for eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.sig"});
        let error = map(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            &ctx(),
        );
        let text = error.to_string();
        assert!(text.contains("max_output_tokens"));
        assert!(!text.contains("eyJ"));
    }

    #[test]
    fn a_usage_limit_says_when_to_retry() {
        let at = chrono::Utc::now().timestamp() + 120;
        let body = json!({"error": {"type": "usage_limit_reached", "resets_at": at}});
        let error = map(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            &ctx(),
        );
        let ApiError::UsageLimitReached {
            retry_after_secs: Some(secs),
            ..
        } = error
        else {
            panic!("{error:?}");
        };
        assert!((110..=120).contains(&secs));
    }

    #[test]
    fn server_errors_do_not_echo_the_body() {
        let error = map(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            b"secret stack trace",
            &ctx(),
        );
        assert!(!error.to_string().contains("secret"));
    }
}
