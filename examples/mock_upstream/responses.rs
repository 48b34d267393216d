//! `POST /responses`: the Codex backend's model turn. Checks the caller the way the backend does
//! (bearer token, `ChatGPT-Account-ID`, and the 400s other relays' users report: `stream` must be
//! true, `store` false, `input` a list, no `system` role, no sampling parameters; nothing that
//! needs storage, `stateless.rs`), then answers
//! with a queued [`Scripted`] answer or with the normal SSE stream. A body nesting deeper than
//! [`MAX_NESTING`] fails with a 500 on every account, as a request that breaks the backend does.
//! The checks and the choice of answer are shared with WebSocket turns (`websocket.rs`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use serde_json::Value;

use super::events::{self, ResponseCtx};
use super::stateless;
use super::stream::{sse_body, sse_frames, Ending};
use super::{detail, oauth, random_hex, unix_now, MockState, RecordedRequest, Scripted};

/// Sampling and length parameters the backend refuses (400 `Unsupported parameter`, as other
/// relays' users report; the Codex CLI never sends them).
const UNSUPPORTED_PARAMETERS: [&str; 3] = ["max_output_tokens", "temperature", "top_p"];

/// Arrays and objects nested deeper than this make the mock fail with a 500, whichever account
/// sends the body: a valid body the backend chokes on (an attacker's deeply nested JSON failed
/// on every account). Below the relay's own limit (127), so that the relay forwards such a body
/// and its failover has to judge whose failure it is.
pub const MAX_NESTING: usize = 100;

/// Admits or refuses the request as the backend would, then answers it.
pub(super) fn handle(state: Arc<MockState>, req: &RecordedRequest) -> HttpResponse {
    let request_id = format!("req_{}", uuid::Uuid::new_v4().simple());
    match admit(&state, req) {
        Ok(body) => {
            let account = req.header("chatgpt-account-id");
            // An account that answers every call the same way (at capacity, failing, capped)
            // gives that answer before anything reads what the body carries, as the backend's
            // capacity and usage checks come before the model reads the conversation.
            let refusal = match state.has_standing_for(account) {
                true => None,
                false => stateless::refusal(&body, account),
            };
            if let Some(refusal) = refusal {
                return with_request_id(refusal.answer(), &request_id);
            }
            answer(state, account, req.body.len(), &body, &request_id)
        }
        Err((status, reason)) => with_request_id(detail(status, &reason), &request_id),
    }
}

/// The request body, or the status and `detail` message the backend refuses it with.
fn admit(state: &MockState, req: &RecordedRequest) -> Result<Value, (StatusCode, String)> {
    let account = caller(state, req)?;
    check_turn(state, account, &req.body, StreamField::Required)
}

/// The caller's account, or why the backend refuses the caller before reading what it asks:
/// the checks a WebSocket handshake gets too.
pub(super) fn caller<'r>(
    state: &MockState,
    req: &'r RecordedRequest,
) -> Result<&'r str, (StatusCode, String)> {
    if !has_acceptable_bearer(state, req) {
        return Err((StatusCode::UNAUTHORIZED, "Unauthorized".into()));
    }
    req.header("chatgpt-account-id")
        .ok_or_else(|| (StatusCode::BAD_REQUEST, "Missing ChatGPT-Account-ID".into()))
}

/// Whether a turn must say `"stream": true`: over HTTP it must, over a WebSocket the backend
/// ignores the field (every answer streams as frames).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum StreamField {
    Required,
    Ignored,
}

/// The turn's body as `account` sent it (`raw`), or the status and message the backend refuses
/// it with, whatever the transport.
pub(super) fn check_turn(
    state: &MockState,
    account: &str,
    raw: &[u8],
    stream: StreamField,
) -> Result<Value, (StatusCode, String)> {
    if nesting(raw) > MAX_NESTING {
        let reason = "Internal Server Error".into();
        return Err((StatusCode::INTERNAL_SERVER_ERROR, reason));
    }
    let body = parse_and_check(raw, stream).map_err(|reason| (StatusCode::BAD_REQUEST, reason))?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match super::models::refusal(state, account, model) {
        Some(reason) => Err((StatusCode::BAD_REQUEST, reason)),
        None => Ok(body),
    }
}

/// The next queued script if there is one, else the normal stream.
fn answer(
    state: Arc<MockState>,
    account: Option<&str>,
    body_len: usize,
    body: &Value,
    request_id: &str,
) -> HttpResponse {
    let ctx = ResponseCtx::new(body, body_len);
    let used = state.used_percent_for(account);
    match turn(&state, &ctx, body, account) {
        Turn::Events(events, ending) => {
            stream_answer(state, &ctx, request_id, &events, ending, used)
        }
        Turn::Status {
            status,
            body,
            headers,
        } => scripted_status(status, body, &headers, request_id),
        Turn::Raw(chunks) => {
            let delay = state.event_delay();
            let mut response = HttpResponse::Ok();
            stream_headers(&mut response, &ctx.model, request_id, used);
            response.streaming(sse_frames(state, chunks, Ending::Complete, delay))
        }
    }
}

/// What a turn that passed the checks is answered with, over HTTP or a WebSocket.
pub(super) enum Turn {
    /// Stream events, then end as told.
    Events(Vec<Value>, Ending),
    /// A scripted error instead of a stream.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Scripted chunks, sent exactly as given.
    Raw(Vec<Bytes>),
}

/// The next queued script for `account` if there is one, else the normal answer (a compaction
/// when asked for one, with an unknown event when the backend has drifted).
pub(super) fn turn(
    state: &MockState,
    ctx: &ResponseCtx,
    body: &Value,
    account: Option<&str>,
) -> Turn {
    turn_with(state.next_scripted_for(account), state, ctx, body, account)
}

/// The turn `scripted` answers, or the normal answer without one.
pub(super) fn turn_with(
    scripted: Option<Scripted>,
    state: &MockState,
    ctx: &ResponseCtx,
    body: &Value,
    account: Option<&str>,
) -> Turn {
    match scripted {
        None if super::compaction::is_requested(body) => {
            Turn::Events(super::compaction::events(ctx), Ending::Complete)
        }
        None if state.drift() => {
            let events = events::with_unknown_event(events::normal(ctx, body, account));
            Turn::Events(events, Ending::Complete)
        }
        None => Turn::Events(events::normal(ctx, body, account), Ending::Complete),
        Some(Scripted::Status {
            status,
            body,
            headers,
        }) => Turn::Status {
            status,
            body,
            headers,
        },
        Some(Scripted::FailedInStream { code, message }) => {
            Turn::Events(events::failed(ctx, &code, &message), Ending::Complete)
        }
        Some(Scripted::Raw(chunks)) => Turn::Raw(chunks),
        Some(Scripted::CutAfterEvents(n)) => {
            let mut events = events::normal(ctx, body, account);
            events.truncate(n);
            Turn::Events(events, Ending::Cut)
        }
    }
}

/// Any bearer the mock minted, or any token whose JWT payload parses: the mock does not check
/// signatures or expiry (script a 401 for that).
fn has_acceptable_bearer(state: &MockState, req: &RecordedRequest) -> bool {
    let Some(token) = req
        .header("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    let tokens = state.tokens();
    if tokens.revoked.contains(token) {
        return false;
    }
    // Like the backend, an expired token is refused whoever minted it.
    let payload = oauth::jwt_payload(token);
    let expired = payload
        .as_ref()
        .and_then(|p| p["exp"].as_i64())
        .is_some_and(|exp| exp <= unix_now());
    !expired && (tokens.is_access_token(token) || payload.is_some())
}

/// The body, or the backend's 400 `detail` message for the first rule it breaks.
fn parse_and_check(raw: &[u8], stream: StreamField) -> Result<Value, String> {
    let body = serde_json::from_slice::<Value>(raw)
        .ok()
        .filter(Value::is_object)
        .ok_or("Invalid JSON")?;
    if stream == StreamField::Required && body.get("stream") != Some(&Value::Bool(true)) {
        return Err("Stream must be set to true".into());
    }
    if body.get("store") == Some(&Value::Bool(true)) {
        return Err("Store must be set to false".into());
    }
    if let Some(param) = UNSUPPORTED_PARAMETERS
        .iter()
        .find(|p| body.get(**p).is_some())
    {
        return Err(format!("Unsupported parameter: {param}"));
    }
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("Model is required".into());
    }
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return Err("Input must be a list".into());
    };
    if input
        .iter()
        .any(|item| item.get("role") == Some(&"system".into()))
    {
        return Err("System messages are not allowed".into());
    }
    // `instructions` is not required: Codex CLI 0.171 sends its prompt as a developer message.
    Ok(body)
}

/// How deep `body`'s arrays and objects nest (brackets inside strings do not count).
fn nesting(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        match (in_string, byte) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn stream_answer(
    state: Arc<MockState>,
    ctx: &ResponseCtx,
    request_id: &str,
    events: &[Value],
    ending: Ending,
    used: (f64, f64),
) -> HttpResponse {
    let delay = state.event_delay();
    let mut response = HttpResponse::Ok();
    stream_headers(&mut response, &ctx.model, request_id, used);
    if state.drift() {
        response.insert_header((events::UNKNOWN_HEADER, "1"));
    }
    response.streaming(sse_body(state, events, ending, delay))
}

/// The headers the backend sends with a 200 stream and the Codex CLI reads: request id, model,
/// turn state, catalog tag, and the rate-limit family (`x-codex-primary-*`/`secondary-*`).
pub(super) fn stream_headers(
    response: &mut HttpResponseBuilder,
    model: &str,
    request_id: &str,
    (primary, secondary): (f64, f64),
) {
    let now = unix_now();
    response
        .content_type("text/event-stream")
        .insert_header(("x-request-id", request_id))
        .insert_header(("openai-model", model))
        .insert_header(("x-codex-turn-state", format!("ts_{}", random_hex(12))))
        .insert_header(("x-models-etag", super::models::ETAG))
        .insert_header(("x-codex-primary-used-percent", primary.to_string()))
        .insert_header(("x-codex-primary-window-minutes", "300"))
        .insert_header(("x-codex-primary-reset-at", (now + 3600).to_string()))
        .insert_header(("x-codex-secondary-used-percent", secondary.to_string()))
        .insert_header(("x-codex-secondary-window-minutes", "10080"))
        .insert_header(("x-codex-secondary-reset-at", (now + 86_400).to_string()));
}

pub(super) fn scripted_status(
    status: u16,
    body: String,
    headers: &[(String, String)],
    request_id: &str,
) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    let scripted = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    // Defaults first, so that a script can override them.
    if !scripted("x-request-id") {
        response.insert_header(("x-request-id", request_id));
    }
    if !scripted("content-type") {
        let is_json = serde_json::from_str::<Value>(&body).is_ok();
        response.content_type(if is_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        });
    }
    for (name, value) in headers {
        response.append_header((name.as_str(), value.as_str()));
    }
    response.body(body)
}

fn with_request_id(mut response: HttpResponse, request_id: &str) -> HttpResponse {
    if let Ok(value) = request_id.parse() {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            value,
        );
    }
    response
}
