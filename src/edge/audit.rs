//! The audit row of a data-plane request (`/v1/…`), built from what its access line holds, when
//! the line is written: so a request's row and its line always agree and nothing is computed
//! twice. This is the one place a request's row is made; when content capture records the
//! request, the row names the capture (`capture_id`).

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::header::{HeaderName, USER_AGENT};
use actix_web::{HttpMessage, HttpRequest};
use compact_str::{CompactString, ToCompactString};

use super::trace::TraceId;
use crate::audit::{client_of, now_ms, Audit, Kind, Record};
use crate::credentials::Principal;
use crate::obs::{bounded, limit};
use crate::state::AppState;

/// Marks a WebSocket handshake's request as serving a turn: each turn's access line and audit row
/// are made from the handshake's request, and are the turn's (`responses.create`), not the
/// connection's (`responses.websocket`).
#[derive(Clone, Copy)]
pub struct WebSocketTurn;

/// What a request's row needs beyond its access line: taken from the request when the line is
/// made (only with the audit trail on, and only for the data plane).
pub struct RequestDraft {
    audit: Audit,
    action: &'static str,
    request_id: CompactString,
    trace_id: Option<CompactString>,
    key_name: Option<CompactString>,
    client_addr: Option<CompactString>,
    client_name: Option<CompactString>,
    client_version: Option<CompactString>,
}

impl RequestDraft {
    /// The draft of `req`'s row (the relay's request id and the trace's id given), when the
    /// audit trail records it.
    pub fn of(req: &HttpRequest, request_id: &str, trace_id: &TraceId) -> Option<RequestDraft> {
        if !req.path().starts_with("/v1/") {
            return None;
        }
        let audit = req.app_data::<actix_web::web::Data<AppState>>()?.audit();
        if !audit.enabled() {
            return None;
        }
        let extensions = req.extensions();
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let (client_name, client_version) = client_of(header(&ORIGINATOR), header(&USER_AGENT));
        Some(RequestDraft {
            audit: audit.clone(),
            action: action_of(req),
            request_id: request_id.into(),
            // Its hex made here, for a row only.
            trace_id: Some(trace_id.to_hex()),
            key_name: extensions
                .get::<Principal>()
                .map(|p| bounded(&p.policy.name, limit::MODEL).into()),
            client_addr: req.peer_addr().map(|peer| peer.ip().to_compact_string()),
            client_name,
            client_version,
        })
    }
}

/// The header the Codex clients name themselves in (beside `User-Agent`).
static ORIGINATOR: HeaderName = HeaderName::from_static("originator");

/// `POST /v1/responses`: the method and path, one space apart (a row's `endpoint`, data plane
/// and admin API alike).
pub fn endpoint(method: &str, path: &str) -> CompactString {
    let mut text = CompactString::with_capacity(method.len() + 1 + path.len());
    text.push_str(method);
    text.push(' ');
    text.push_str(path);
    text
}

/// The row's action: which endpoint of the Responses API was called. The two routes nearly every
/// request takes are known by their path: finding a request's route pattern walks the router's
/// whole resource map and builds it as a new string (the request families avoid it alike,
/// `super::metrics`).
fn action_of(req: &HttpRequest) -> &'static str {
    let route = match req.path() {
        path @ ("/v1/responses" | "/v1/models") => Cow::Borrowed(path),
        _ => match req.match_pattern() {
            Some(pattern) => Cow::Owned(pattern),
            None => return "request",
        },
    };
    match route.as_ref() {
        // A WebSocket handshake; its turns are `responses.create` rows of their own.
        "/v1/responses"
            if req.method() == actix_web::http::Method::GET
                && !req.extensions().contains::<WebSocketTurn>() =>
        {
            "responses.websocket"
        }
        "/v1/responses" => "responses.create",
        "/v1/models" => "models.list",
        "/v1/models/{id}" => "models.get",
        _ => "request",
    }
}

/// How a request ended, as its access line says it: what the row adds to its draft, moved out of
/// the spent line.
pub struct Answered {
    pub endpoint: CompactString,
    pub key_id: Option<CompactString>,
    pub tenant_id: Option<CompactString>,
    pub model_requested: Option<CompactString>,
    pub model_served: Option<CompactString>,
    pub account_id: Option<CompactString>,
    pub accounts_tried: Vec<CompactString>,
    pub status: u16,
    pub error_code: Option<CompactString>,
    pub stream: bool,
    pub stream_outcome: Option<&'static str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub capture_id: Option<CompactString>,
    pub took: Duration,
}

impl RequestDraft {
    /// Queues the request's row: the draft and how it was answered.
    pub fn record(self, answered: Answered) {
        let took_ms = answered.took.as_millis() as u64;
        let record = Record {
            at_ms: now_ms().saturating_sub(took_ms as i64),
            kind: Kind::Request,
            action: CompactString::const_new(self.action),
            request_id: Some(self.request_id),
            trace_id: self.trace_id,
            tenant_id: answered.tenant_id,
            key_id: answered.key_id,
            key_name: self.key_name,
            client_addr: self.client_addr,
            client_name: self.client_name,
            client_version: self.client_version,
            endpoint: Some(answered.endpoint),
            model_requested: answered.model_requested,
            model_served: answered.model_served,
            account_id: answered.account_id,
            accounts_tried: answered.accounts_tried,
            status: Some(answered.status),
            error_code: answered.error_code,
            stream: Some(answered.stream),
            stream_outcome: answered.stream_outcome.map(CompactString::const_new),
            input_tokens: answered.input_tokens,
            output_tokens: answered.output_tokens,
            duration_ms: Some(took_ms),
            capture_id: answered.capture_id,
            ..Record::default()
        };
        self.audit.record(record);
    }
}
