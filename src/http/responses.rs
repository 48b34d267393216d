//! `POST /v1/responses`: admit the call, read its body within its limits (`intake`), validate
//! it, expand its references to earlier responses (`recall.rs`) and normalize it, let the
//! failover loop find an account that answers (`failover.rs`), then stream its bytes back
//! (`stream: true`) or assemble one Response object (otherwise), recording the answer for the
//! response memory. Each of these phases is timed for the access line (`edge::phases`). A call a
//! running content capture covers is teed (`capture`): its body and its answer are kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use relay_actors::{Lease, Outcome};
use serde_json::Value;

use super::error::ApiError;
use super::failover::{self, Attempts, Call, Committed};
use super::relay_stream::{RelayStream, StreamTiming};
use crate::capture::Tee;
use crate::compat;
use crate::credentials::Principal;
use crate::domain::Usage;
use crate::edge::context::{AccessNote, RequestContext, StreamLine};
use crate::edge::phases::{Phase, Phases};
use crate::governance::models::{ModelRefusal, Resolved};
use crate::governance::Admission;
use crate::intake::{self, BodyLimits};
use crate::recall::Recording;
use crate::request_body::{kind, BodyError, InputFacts, Kind, RequestBody};
use crate::state::AppState;
use crate::upstream::assemble::{Assembled, Assembler, CompletedOutputs};
use crate::upstream::headers::{returned_to_client, text};
use crate::upstream::shown_limits::ShownLimits;
use crate::upstream::{UpstreamClient, UpstreamResponse};

/// Largest upstream stream the relay assembles for a non-streaming answer.
const ASSEMBLY_LIMIT: usize = 64 * 1024 * 1024;

pub async fn create_response(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    upstream: web::Data<UpstreamClient>,
    ctx: web::ReqData<RequestContext>,
) -> Result<HttpResponse, ApiError> {
    relay_call(req, body, state, upstream, ctx, Form::AsAsked).await
}

/// `POST /v1/responses/compact`: the compaction of the input (`compact.rs`).
pub async fn compact_response(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    upstream: web::Data<UpstreamClient>,
    ctx: web::ReqData<RequestContext>,
) -> Result<HttpResponse, ApiError> {
    relay_call(req, body, state, upstream, ctx, Form::Compact).await
}

/// What the answer to the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A stream or one Response object, as the body's `stream` asks.
    AsAsked,
    /// The compaction of the input, in the compact shape (`compact.rs`).
    Compact,
}

/// Relays one call and notes it for the access line.
async fn relay_call(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    upstream: web::Data<UpstreamClient>,
    ctx: web::ReqData<RequestContext>,
    form: Form,
) -> Result<HttpResponse, ApiError> {
    let mut note = AccessNote::default();
    let mut tee = None;
    let shared = (&**state, &**upstream, &*ctx);
    let result = relay(&req, body, shared, form, &mut note, &mut tee).await;
    if let (Some(tee), Err(error)) = (tee.as_mut(), &result) {
        tee.answered(actix_web::ResponseError::status_code(error).as_u16());
    }
    req.extensions_mut().insert(note);
    result
}

async fn relay(
    req: &HttpRequest,
    body: web::Payload,
    (state, upstream, ctx): (&AppState, &UpstreamClient, &RequestContext),
    form: Form,
    note: &mut AccessNote,
    tee: &mut Option<Tee>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.settings();
    let principal = principal_of(req)?;
    // Admitted before the body is read, and held while it arrives: a slow or stalled upload
    // takes its key's concurrency slot and a place under the global cap like any call in
    // flight, so neither can be exceeded by uploads that never finish.
    // One clock read ends admission and starts the body's read.
    let admitting = Instant::now();
    let admission = super::governance::admit(state, &principal);
    let admitted = Instant::now();
    Phases::add(req, Phase::Admission, admitted - admitting);
    let admission = admission?;
    let limits = BodyLimits {
        max_bytes: settings.server.max_body_bytes,
        deadline: Duration::from_secs(settings.server.body_read_timeout_secs),
    };
    let body = intake::read_body(req.headers(), body.into_inner(), limits).await;
    Phases::add(req, Phase::Body, admitted.elapsed());
    let body = body?;
    let tenant = principal.policy.tenant.as_ref().map(|t| t.id.as_str());
    *tee = state
        .capture()
        .tee(&principal.key_id, tenant, &ctx.id, &body);
    note.capture_id = tee.as_ref().and_then(Tee::capture_id).cloned();
    let (mut request, model) = parse_request(&body)?;
    super::file_references::refuse_file_ids(request.get("input"))?;
    let wants_stream = form == Form::AsAsked && request.boolean("stream").unwrap_or(false);
    note.model = Some(model.clone());
    note.stream = wants_stream;
    let resolved = resolve_model(state, &principal, &model)?;
    note.resolved_model = Some(Arc::from(resolved.slug.as_str()));
    request.set("model", &resolved.slug);
    let mut input = InputFacts::of(request.get("input"));
    let expanded = super::recall::expand_references(state, &principal, &mut request, &mut input)?;
    let affinity = affinity_key(req, &request);
    let written_by = super::recall::writer_of_replayed(
        state,
        &principal,
        &request,
        &input,
        expanded,
        affinity.is_some(),
    );
    compat::normalize(
        &mut request,
        &input,
        settings.compat.mode,
        &settings.compat.default_instructions,
    );
    let compact = match form {
        Form::Compact => Some(super::compact::bridge(&mut request)?),
        Form::AsAsked => None,
    };
    let shown_limits = super::codex_limits::shown_for(state, &principal);
    let call = Call {
        req,
        payload: request.forward(&body),
        shown_limits,
        model: &resolved.slug,
        exclude_plans: &resolved.exclude_plans,
        affinity,
        carries_encrypted: input.carries_encrypted,
        written_by,
        via: super::transport::Via::Http,
        pinned: None,
    };
    let (committed, attempts) = failover::run(state, upstream, &call, ctx).await;
    record_attempts(req, (state, ctx), attempts, call.carries_encrypted, note);
    let committed = committed?;
    let reply = Reply {
        model: &model,
        wants_stream,
        admission,
        recording: super::recall::recording(state, &principal, &call.payload, &committed.lease),
        tee,
        shown_limits,
        compact,
    };
    // A stream times its own end; an assembled answer is read to its end here.
    let answering = (!wants_stream).then(Instant::now);
    let answered = answer(committed, reply, state, ctx, note).await;
    if let Some(answering) = answering {
        Phases::add(req, Phase::Stream, answering.elapsed());
    }
    answered
}

/// What the failover's attempts leave behind: the failover warnings, the request's phases, the
/// pool's attempt counts, and the accounts tried on the access line (and the audit row).
pub(super) fn record_attempts(
    req: &HttpRequest,
    (state, ctx): (&AppState, &RequestContext),
    attempts: Attempts,
    carries_encrypted: bool,
    note: &mut AccessNote,
) {
    attempts.log(&ctx.log, carries_encrypted);
    Phases::update(req, |phases| attempts.phases(phases));
    attempts.count(state.pool_metrics());
    if state.audit().enabled() {
        note.accounts_tried = attempts.accounts().map(|id| id.as_str().into()).collect();
    }
    note_last_attempt(note, attempts);
}

/// The access line names the last account tried and what its upstream answered: the account
/// that serves the client, or the last one that failed.
fn note_last_attempt(note: &mut AccessNote, attempts: Attempts) {
    let Some(last) = attempts.into_last() else {
        return;
    };
    note.account = Some(last.account_id.to_string());
    if let Some(answer) = last.answer {
        note.upstream_status = Some(answer.status);
        note.upstream_request_id = answer.request_id;
    }
}

/// The request's top-level fields (kept as sent, in order), and its model.
pub(super) fn parse_request(body: &[u8]) -> Result<(RequestBody<'_>, String), ApiError> {
    let request = RequestBody::parse(body).map_err(|error| match error {
        BodyError::NotJson(e) => ApiError::invalid(
            format!("We could not parse the JSON body of your request ({e})."),
            None,
        ),
        BodyError::NotAnObject => {
            ApiError::invalid("The request body must be a JSON object.", None)
        }
    })?;
    let model = check_types(&request)?;
    Ok((request, model))
}

/// Type checks of the fields the relay itself reads; everything else is the upstream's to judge.
/// Returns the model.
fn check_types(request: &RequestBody) -> Result<String, ApiError> {
    let wrong = |param: &'static str, expected: &str| {
        Err(ApiError::InvalidRequest {
            message: format!("Invalid type for '{param}': expected {expected}."),
            param: Some(param),
            code: Some("invalid_type"),
        })
    };
    let kind_of = |key: &str| request.get(key).map(kind);
    let model = match kind_of("model") {
        None | Some(Kind::Null) => {
            return Err(ApiError::InvalidRequest {
                message: "Missing required parameter: 'model'.".to_owned(),
                param: Some("model"),
                code: Some("missing_required_parameter"),
            })
        }
        Some(Kind::String) => request.string("model").filter(|m| !m.trim().is_empty()),
        Some(_) => None,
    };
    let Some(model) = model else {
        return wrong("model", "a non-empty string");
    };
    if !matches!(kind_of("input"), None | Some(Kind::String | Kind::Array)) {
        return wrong("input", "a string or an array of input items");
    }
    for flag in ["stream", "store", "parallel_tool_calls"] {
        if !matches!(kind_of(flag), None | Some(Kind::Null | Kind::Bool)) {
            return wrong(flag, "a boolean");
        }
    }
    if !matches!(
        kind_of("instructions"),
        None | Some(Kind::Null | Kind::String)
    ) {
        return wrong("instructions", "a string");
    }
    if !matches!(
        kind_of("previous_response_id"),
        None | Some(Kind::Null | Kind::String)
    ) {
        return wrong("previous_response_id", "a string");
    }
    Ok(model)
}

/// The caller, as authentication left it in the request.
pub(super) fn principal_of(req: &HttpRequest) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Internal)
}

/// The model's slug and the plans that do not serve it, or why this key may not use it.
pub(super) fn resolve_model(
    state: &AppState,
    principal: &Principal,
    model: &str,
) -> Result<Resolved, ApiError> {
    state
        .models()
        .resolve(model, &principal.policy)
        .map_err(|refusal| {
            // The name is echoed in the message: bounded, like everything a client chose.
            let model = crate::obs::bounded(model, crate::obs::limit::MODEL).into_owned();
            match refusal {
                ModelRefusal::NotFound => ApiError::ModelNotFound(model),
                ModelRefusal::NotAllowed => ApiError::ModelNotAllowed(model),
            }
        })
}

/// The conversation key that should keep a conversation on one account.
pub(super) fn affinity_key(req: &HttpRequest, body: &RequestBody) -> Option<String> {
    [
        "x-codex-turn-state",
        "session-id",
        "session_id",
        "thread-id",
    ]
    .iter()
    .find_map(|name| text(req.headers(), name).map(str::to_owned))
    .or_else(|| body.string("prompt_cache_key"))
    .filter(|key| !key.trim().is_empty())
}

/// What the client asked for, as far as the answer's form goes, the admission that lasts
/// as long as the answer, the answer's recording for the response memory (when it is on), and
/// the call's tee when a capture covers it.
struct Reply<'a> {
    model: &'a str,
    wants_stream: bool,
    admission: Admission,
    recording: Option<Recording>,
    tee: &'a mut Option<Tee>,
    shown_limits: ShownLimits,
    /// A compaction: the user messages its answer keeps.
    compact: Option<Vec<Value>>,
}

async fn answer(
    committed: Committed,
    reply: Reply<'_>,
    state: &AppState,
    ctx: &RequestContext,
    note: &mut AccessNote,
) -> Result<HttpResponse, ApiError> {
    let Committed {
        mut response,
        lease,
        held,
    } = committed;
    let idle = Duration::from_secs(state.settings().upstream.stream_idle_timeout_secs);
    let mut builder = HttpResponse::Ok();
    copy_returned_headers(&response, &mut builder);
    for header in reply.shown_limits.headers() {
        builder.insert_header(header);
    }
    if reply.wants_stream {
        let timing = StreamTiming {
            idle_timeout: idle,
            keepalive: Duration::from_millis(state.settings().server.sse_keepalive_ms),
        };
        let line = StreamLine::default();
        note.line_for_stream = Some(line.clone());
        let stream = RelayStream::new(response, lease, held, timing, ctx.log.clone())
            .with_admission(reply.admission)
            .with_access_line(line, ctx.started)
            .with_recording(reply.recording)
            .with_capture(reply.tee.take());
        return Ok(builder
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(stream));
    }
    let assembler = match reply.recording {
        Some(_) => Assembler::default().keeping_outputs(),
        None => Assembler::default(),
    };
    let mut reading = Reading {
        assembler,
        recording: reply.recording,
    };
    reading.push(held.prefix);
    let (assembled, recording) = match held.ended {
        true => {
            let (assembled, recording) = reading.finish(reply.model);
            lease.report(outcome_of(&assembled));
            (assembled, recording)
        }
        false => assemble(reading, &mut response, lease, idle, reply.model).await?,
    };
    match assembled {
        Assembled::Response(value) => {
            record_usage(&reply.admission, &value, note);
            if let Some((recording, completed)) = recording {
                let CompletedOutputs {
                    events,
                    response_id,
                } = completed;
                recording.finish(events, response_id, Instant::now());
            }
            if let Some(tee) = reply.tee.as_mut() {
                tee.answered_json(200, &value);
            }
            match reply.compact {
                Some(kept) => Ok(builder.json(super::compact::compacted(value, kept)?)),
                None => Ok(builder.json(value)),
            }
        }
        Assembled::Failed(error) => Err(super::upstream_error::from_failed_event(&error)),
        Assembled::Truncated => Err(ApiError::UpstreamFailed(
            "the upstream stream ended before the response completed",
        )),
    }
}

/// Counts an assembled response's usage against the caller's quotas, and notes it for the
/// audit row.
fn record_usage(admission: &Admission, response: &Value, note: &mut AccessNote) {
    if let Some(usage) = Usage::from_json(&response["usage"]) {
        note.usage = Some((usage.input_tokens, usage.output_tokens));
        admission.record_usage(usage);
    }
}

fn copy_returned_headers(response: &UpstreamResponse, builder: &mut HttpResponseBuilder) {
    for (name, value) in response.headers() {
        if returned_to_client(name) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
}

/// An assembled answer being read: the Response object, and the recording beside it (its
/// assembler then keeps the output events).
struct Reading {
    assembler: Assembler,
    recording: Option<Recording>,
}

/// The recording of a completed answer, with the output events it remembers.
type Recorded = Option<(Recording, CompletedOutputs)>;

impl Reading {
    fn push(&mut self, chunk: Bytes) {
        self.assembler.push(chunk);
    }

    fn finish(self, model: &str) -> (Assembled, Recorded) {
        let (assembled, completed) = self.assembler.finish_keeping(model);
        (assembled, self.recording.zip(completed))
    }
}

/// Reads the whole upstream stream into one Response object; the lease reports how it ended.
async fn assemble(
    mut reading: Reading,
    response: &mut UpstreamResponse,
    lease: Lease,
    idle: Duration,
    model: &str,
) -> Result<(Assembled, Recorded), ApiError> {
    match read_into(&mut reading, response, idle).await {
        Ok(()) => {
            let (assembled, recording) = reading.finish(model);
            lease.report(outcome_of(&assembled));
            Ok((assembled, recording))
        }
        Err((outcome, error)) => {
            lease.report(outcome);
            Err(error)
        }
    }
}

/// What the account is told about an assembled answer: a stream that ended without its
/// terminal event was cut, which charges the account like a cut stream does.
fn outcome_of(assembled: &Assembled) -> Outcome {
    match assembled {
        Assembled::Truncated => Outcome::TransportFailed,
        Assembled::Response(_) | Assembled::Failed(_) => Outcome::Completed { status: 200 },
    }
}

/// Feeds the upstream body to `assembler` until it ends; on failure, what the account should be
/// told and what the client should be told.
async fn read_into(
    reading: &mut Reading,
    response: &mut UpstreamResponse,
    idle: Duration,
) -> Result<(), (Outcome, ApiError)> {
    let mut read = 0usize;
    loop {
        let chunk = match actix_web::rt::time::timeout(idle, response.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => {
                let error = ApiError::UpstreamFailed("the upstream connection failed");
                return Err((Outcome::TransportFailed, error));
            }
            Err(_elapsed) => return Err((Outcome::TimedOut, ApiError::UpstreamTimeout)),
        };
        read += chunk.len();
        if read > ASSEMBLY_LIMIT {
            let error = ApiError::UpstreamFailed("the upstream answer is too large");
            return Err((Outcome::Completed { status: 200 }, error));
        }
        reading.push(chunk);
    }
}
