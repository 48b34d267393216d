//! The audit row of a data-plane request (`/v1/…`), built from what its access line holds, when
//! the line is written: so a request's row and its line always agree and nothing is computed
//! twice. This is the one place a request's row is made; content capture, when it records a
//! request, adds its `capture_id` here.

use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest};

use super::context::{AccessLine, RequestContext, StreamEnd};
use crate::audit::{client_of, now_ms, Audit, Kind, Record};
use crate::credentials::Principal;
use crate::obs::{bounded, limit};
use crate::state::AppState;

/// What a request's row needs beyond its access line: taken from the request when the line is
/// made (only with the audit trail on, and only for the data plane).
pub struct RequestDraft {
    audit: Audit,
    action: &'static str,
    request_id: String,
    trace_id: Option<String>,
    key_name: Option<String>,
    client_addr: Option<String>,
    client_name: Option<String>,
    client_version: Option<String>,
}

impl RequestDraft {
    /// The draft of `req`'s row, when the audit trail records it.
    pub fn of(req: &HttpRequest) -> Option<RequestDraft> {
        if !req.path().starts_with("/v1/") {
            return None;
        }
        let audit = req.app_data::<actix_web::web::Data<AppState>>()?.audit();
        if !audit.enabled() {
            return None;
        }
        let extensions = req.extensions();
        let context = extensions.get::<RequestContext>();
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let (client_name, client_version) = client_of(header("originator"), header("user-agent"));
        Some(RequestDraft {
            audit: audit.clone(),
            action: action_of(req),
            request_id: context.map(|c| c.id.clone()).unwrap_or_default(),
            trace_id: context.map(|c| c.trace.trace_id.to_string()),
            key_name: extensions
                .get::<Principal>()
                .map(|p| bounded(&p.policy.name, limit::MODEL).into_owned()),
            client_addr: req.peer_addr().map(|peer| peer.ip().to_string()),
            client_name,
            client_version,
        })
    }
}

/// The row's action: which endpoint of the Responses API was called.
fn action_of(req: &HttpRequest) -> &'static str {
    match req.match_pattern().as_deref() {
        Some("/v1/responses") => "responses.create",
        Some("/v1/models") => "models.list",
        Some("/v1/models/{id}") => "models.get",
        _ => "request",
    }
}

impl AccessLine {
    /// Queues the request's audit row (a stream's when it ended, with `end`).
    pub(super) fn audit(&self, status: u16, took: Duration, end: Option<&StreamEnd>) {
        let Some(draft) = &self.draft else {
            return;
        };
        let note = &self.note;
        let took_ms = took.as_millis() as u64;
        let record = Record {
            at_ms: now_ms().saturating_sub(took_ms as i64),
            kind: Kind::Request,
            action: draft.action.to_owned(),
            request_id: Some(draft.request_id.clone()),
            trace_id: draft.trace_id.clone(),
            tenant_id: self.tenant_id.clone(),
            key_id: self.key_id.clone(),
            key_name: draft.key_name.clone(),
            client_addr: draft.client_addr.clone(),
            client_name: draft.client_name.clone(),
            client_version: draft.client_version.clone(),
            endpoint: Some(format!("{} {}", self.method, self.path)),
            model_requested: note.model.clone(),
            model_served: note.resolved_model.as_deref().map(str::to_owned),
            account_id: note.account.clone(),
            accounts_tried: note.accounts_tried.clone(),
            status: Some(status),
            error_code: note
                .error_code
                .clone()
                .or_else(|| end.and_then(|end| end.failure_code.clone())),
            stream: Some(note.stream),
            stream_outcome: end.map(|end| end.outcome.name().to_owned()),
            input_tokens: end.map_or(note.usage.map(|u| u.0), |end| end.input_tokens),
            output_tokens: end.map_or(note.usage.map(|u| u.1), |end| end.output_tokens),
            duration_ms: Some(took_ms),
            ..Record::default()
        };
        draft.audit.record(record);
    }
}
