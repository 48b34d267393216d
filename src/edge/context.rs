//! Per-request context: a request id (the client's `x-request-id` when it is sane, else a new
//! one), its trace (`trace.rs`, answered in `traceresponse`), a logger that stamps both on every
//! line, and one access-log line per request — written when the answer leaves, or, for a stream,
//! when the stream ends (with what it carried and the time each phase took, `phases.rs`), so a
//! request is one line either way. What a client or the upstream chose (method, path, model,
//! upstream ids and codes) is bounded in length and escaped (`obs::bounded`); a refusal the
//! authentication throttle counts instead ([`Unlogged`]) writes no line. The request families
//! (`super::metrics`) record each request where its line is written, [`Unlogged`] ones too.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use compact_str::CompactString;
use slog::{info, o, Logger, Record, Serializer, KV};

use super::audit::{endpoint, Answered, RequestDraft};
use super::caller::Caller;
use super::error::ErrorCode;
use super::metrics::{RequestMetrics, RequestRecord, StreamOutcome};
use super::phases::Phases;
use super::trace::{SpanId, Trace, TRACERESPONSE};
use crate::obs::{bounded, bounded_string, limit, redact_secrets};
use crate::state::AppState;

/// Available to handlers through `web::ReqData<RequestContext>`.
#[derive(Clone)]
pub struct RequestContext {
    pub id: String,
    pub log: Logger,
    /// When the request arrived.
    pub started: Instant,
    /// The request's trace and the relay's span for it.
    pub trace: Trace,
}

/// The request's logger as a handler's argument: its lines carry the request id and trace (the
/// root logger for a request outside the request context).
pub struct RequestLog(Logger);

impl FromRequest for RequestLog {
    type Error = Infallible;
    type Future = Ready<Result<RequestLog, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let log = match req.extensions().get::<RequestContext>() {
            Some(ctx) => ctx.log.clone(),
            None => match req.app_data::<web::Data<AppState>>() {
                Some(state) => state.log().clone(),
                None => Logger::root(slog::Discard, o!()),
            },
        };
        ready(Ok(RequestLog(log)))
    }
}

impl Deref for RequestLog {
    type Target = Logger;

    fn deref(&self) -> &Logger {
        &self.0
    }
}

/// What a handler learned that the access log should say (never content, never secrets).
#[derive(Clone, Default)]
pub struct AccessNote {
    pub model: Option<String>,
    /// The model the registry resolved `model` to: the metrics' `model` label.
    pub resolved_model: Option<Arc<str>>,
    pub account: Option<String>,
    pub upstream_status: Option<u16>,
    pub upstream_request_id: Option<String>,
    pub stream: bool,
    /// Every account tried, in order (noted only with the audit trail on).
    pub accounts_tried: Vec<compact_str::CompactString>,
    /// The `code` of the error the relay answered with.
    pub error_code: Option<String>,
    /// The content capture that recorded the call, if one did.
    pub capture_id: Option<Arc<str>>,
    /// The input and output tokens of an assembled (non-streaming) answer.
    pub usage: Option<(u64, u64)>,
    /// Set when the answer is a stream that writes the access line itself when it ends.
    pub line_for_stream: Option<StreamLine>,
}

/// The access line of a streamed answer: put here by the access log when the answer's headers
/// leave, taken by the stream when it ends and written then — by value, so its ids move into the
/// audit row rather than being copied.
#[derive(Clone, Default)]
pub struct StreamLine(Arc<Mutex<Option<AccessLine>>>);

impl StreamLine {
    pub fn put(&self, line: AccessLine) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(line);
    }

    /// The line, once: `None` before the access log put it (no access log in front) or after.
    pub fn take(&self) -> Option<AccessLine> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The first byte of the stream is leaving (for `time_to_first_byte_seconds`).
    pub fn first_byte(&self, started: Instant) {
        let line = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(line) = line.as_ref() {
            line.first_byte(started);
        }
    }
}

/// Marks an answer whose access line is not written: an authentication failure from an address
/// past its budget, counted by the throttle (`governance::auth_failures`) instead.
#[derive(Clone, Copy)]
pub struct Unlogged;

/// The access line's fields, gathered once from the request and what the handler noted.
pub struct AccessLine {
    method: String,
    path: String,
    key_id: Option<String>,
    tenant_id: Option<String>,
    admin_token_id: Option<String>,
    note: AccessNote,
    /// The request's audit row, but for what the line holds (`super::audit`).
    draft: Option<RequestDraft>,
    phases: Phases,
    client_trace: ClientTrace,
    /// What the request families record when the line is written.
    record: Option<RequestRecord>,
}

impl AccessLine {
    pub fn of(req: &HttpRequest, note: AccessNote, record: Option<RequestRecord>) -> AccessLine {
        let extensions = req.extensions();
        let caller = extensions.get::<Caller>();
        let trace = extensions.get::<RequestContext>().map(|ctx| &ctx.trace);
        let bound = |text: &str, max| bounded(text, max).into_owned();
        AccessLine {
            method: bound(req.method().as_str(), limit::METHOD),
            path: bound(req.path(), limit::PATH),
            key_id: caller.and_then(Caller::key_id).map(str::to_owned),
            tenant_id: caller.and_then(Caller::tenant_id).map(str::to_owned),
            admin_token_id: caller.and_then(Caller::admin_token_id).map(str::to_owned),
            note: AccessNote {
                model: note.model.map(|m| bounded_string(m, limit::MODEL)),
                upstream_request_id: note
                    .upstream_request_id
                    .map(|id| bounded_string(id, limit::UPSTREAM_TEXT)),
                line_for_stream: None,
                ..note
            },
            phases: extensions.get::<Phases>().copied().unwrap_or_default(),
            client_trace: ClientTrace {
                parent_span_id: trace.and_then(|t| t.parent_span_id),
                tracestate: trace.and_then(|t| t.tracestate.as_deref().map(redact_secrets)),
            },
            record,
            draft: None,
        }
        .with_draft(req)
    }

    fn with_draft(mut self, req: &HttpRequest) -> AccessLine {
        let extensions = req.extensions();
        let Some(context) = extensions.get::<RequestContext>() else {
            return self;
        };
        self.draft = RequestDraft::of(req, &context.id, &context.trace.trace_id);
        self
    }

    /// The line of an answer that has left whole (then its audit row).
    pub fn write(self, log: &Logger, status: u16, started: Instant) {
        let elapsed = started.elapsed();
        if let Some(record) = &self.record {
            record.answered(status, elapsed);
        }
        let note = &self.note;
        info!(log, "request";
            "method" => &self.method, "path" => &self.path, "status" => status,
            "duration_ms" => elapsed.as_millis() as u64,
            "key_id" => &self.key_id, "tenant_id" => &self.tenant_id,
            "admin_token_id" => &self.admin_token_id,
            "model" => &note.model, "account_id" => &note.account,
            "upstream_status" => note.upstream_status,
            "upstream_request_id" => &note.upstream_request_id, "stream" => note.stream,
            &self.client_trace, self.phases);
        self.audit(status, elapsed, None);
    }

    /// The line of a stream that has ended: the request's fields and what the stream carried
    /// (then its audit row).
    pub fn write_stream(self, log: &Logger, started: Instant, end: &StreamEnd) {
        let elapsed = started.elapsed();
        if let Some(record) = &self.record {
            record.stream_ended(end.outcome, elapsed);
        }
        let note = &self.note;
        let phases = Phases {
            stream: Some(end.streamed),
            ..self.phases
        };
        info!(log, "request";
            "method" => &self.method, "path" => &self.path, "status" => 200,
            "duration_ms" => elapsed.as_millis() as u64,
            "key_id" => &self.key_id, "tenant_id" => &self.tenant_id,
            "model" => &note.model, "account_id" => &note.account,
            "upstream_status" => note.upstream_status,
            "upstream_request_id" => &note.upstream_request_id, "stream" => true,
            "how" => end.how, "bytes" => end.bytes, "events" => end.events,
            "input_tokens" => end.input_tokens, "output_tokens" => end.output_tokens,
            "failure_code" => &end.failure_code,
            &self.client_trace, phases);
        self.audit(200, elapsed, Some(end));
    }

    /// Queues the request's audit row (a stream's when it ended, with `end`). The line is spent:
    /// what the row holds moves into it.
    fn audit(self, status: u16, took: Duration, end: Option<&StreamEnd>) {
        let AccessLine {
            method,
            path,
            key_id,
            tenant_id,
            note,
            draft,
            ..
        } = self;
        let Some(draft) = draft else {
            return;
        };
        let owned = |text: Option<String>| text.map(CompactString::from);
        let failure_code = end.and_then(|end| end.failure_code.as_deref());
        let usage = note.usage;
        draft.record(Answered {
            endpoint: endpoint(&method, &path),
            key_id: owned(key_id),
            tenant_id: owned(tenant_id),
            model_requested: owned(note.model),
            model_served: note.resolved_model.as_deref().map(CompactString::from),
            account_id: owned(note.account),
            accounts_tried: note.accounts_tried,
            status,
            error_code: owned(note.error_code).or(failure_code.map(CompactString::from)),
            stream: note.stream,
            stream_outcome: end.map(|end| end.outcome.name()),
            input_tokens: end.map_or(usage.map(|u| u.0), |end| end.input_tokens),
            output_tokens: end.map_or(usage.map(|u| u.1), |end| end.output_tokens),
            capture_id: note.capture_id.as_deref().map(CompactString::from),
            took,
        });
    }

    /// The first byte of a streamed answer is leaving (for `time_to_first_byte_seconds`).
    pub fn first_byte(&self, started: Instant) {
        if let Some(record) = &self.record {
            record.first_byte(started.elapsed());
        }
    }
}

/// The client's trace context as the access line names it: the client's span and its
/// `tracestate` with credential-shaped text redacted, each left out when the client sent none
/// (most requests: the line is written for every request, and an absent field costs nothing).
struct ClientTrace {
    parent_span_id: Option<SpanId>,
    tracestate: Option<String>,
}

impl KV for &ClientTrace {
    fn serialize(&self, record: &Record, out: &mut dyn Serializer) -> slog::Result {
        if let Some(span) = &self.parent_span_id {
            slog::Value::serialize(span, record, "parent_span_id", out)?;
        }
        match &self.tracestate {
            Some(state) => out.emit_str("tracestate", state),
            None => Ok(()),
        }
    }
}

/// How a stream ended, for its access line.
pub struct StreamEnd {
    pub how: &'static str,
    pub outcome: StreamOutcome,
    pub bytes: u64,
    pub events: u64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub failure_code: Option<String>,
    /// From the held-back start being ready to the end (the access line's `phase_stream_us`).
    pub streamed: Duration,
}

fn sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let record = req
        .app_data::<web::Data<RequestMetrics>>()
        .map(|metrics| metrics.arrived(&req));
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let root = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.log().clone(),
        None => Logger::root(slog::Discard, o!()),
    };
    let trace = Trace::of(req.headers());
    let log = root.new(o!("request_id" => id.clone(),
        "trace_id" => trace.trace_id, "span_id" => trace.span_id));
    let traceresponse = trace.traceresponse();
    req.extensions_mut().insert(RequestContext {
        id: id.clone(),
        log: log.clone(),
        started,
        trace,
    });
    let mut res = next.call(req).await?;
    if let Some(value) = traceresponse {
        res.headers_mut().insert(TRACERESPONSE, value);
    }
    let relay_id = HeaderValue::from_str(&id).ok();
    if let Some(value) = relay_id {
        let headers = res.headers_mut();
        headers.insert(HeaderName::from_static("x-relay-request-id"), value.clone());
        if !headers.contains_key("x-request-id") {
            headers.insert(HeaderName::from_static("x-request-id"), value);
        }
    }
    if res.request().extensions().contains::<Unlogged>() {
        if let Some(record) = record {
            record.answered(res.status().as_u16(), started.elapsed());
        }
        return Ok(res);
    }
    let mut note = res
        .request()
        .extensions_mut()
        .remove::<AccessNote>()
        .unwrap_or_default();
    note.error_code = res
        .response()
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.0.clone());
    let slot = note.line_for_stream.take();
    let record = record.map(|record| record.with_model(note.resolved_model.clone()));
    let line = AccessLine::of(res.request(), note, record);
    match slot {
        // The stream writes the line when it ends.
        Some(slot) if res.status().is_success() => slot.put(line),
        _ => line.write(&log, res.status().as_u16(), started),
    }
    Ok(res)
}

/// A request id the relay makes: `req_` and a UUIDv7, time-ordered so that the audit trail's
/// request-id index grows at its end rather than at a random place (a page written per row).
pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}
