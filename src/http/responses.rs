//! `POST /v1/responses`: validate and normalize the request, let the failover loop find an
//! account that answers (`failover.rs`), then stream its bytes back (`stream: true`) or assemble
//! one Response object (otherwise).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use relay_actors::{Lease, Outcome};
use serde_json::{Map, Value};

use super::auth::Principal;
use super::context::{AccessNote, RequestContext};
use super::error::ApiError;
use super::failover::{self, Call, Committed};
use super::relay_stream::{RelayStream, StreamTiming};
use super::AppState;
use crate::compat;
use crate::governance::models::{ModelRefusal, Resolved};
use crate::governance::Admission;
use crate::upstream::assemble::{Assembled, Assembler};
use crate::upstream::headers::{returned_to_client, text};
use crate::upstream::usage::Usage;
use crate::upstream::{UpstreamClient, UpstreamResponse};

/// Largest upstream stream the relay assembles for a non-streaming answer.
const ASSEMBLY_LIMIT: usize = 64 * 1024 * 1024;

pub async fn create_response(
    req: HttpRequest,
    body: Result<Bytes, actix_web::Error>,
    state: web::Data<AppState>,
    upstream: web::Data<UpstreamClient>,
    ctx: web::ReqData<RequestContext>,
) -> Result<HttpResponse, ApiError> {
    let mut note = AccessNote::default();
    let result = relay(&req, body, &state, &upstream, &ctx, &mut note).await;
    req.extensions_mut().insert(note);
    result
}

async fn relay(
    req: &HttpRequest,
    body: Result<Bytes, actix_web::Error>,
    state: &AppState,
    upstream: &UpstreamClient,
    ctx: &RequestContext,
    note: &mut AccessNote,
) -> Result<HttpResponse, ApiError> {
    let settings = state.settings();
    let body = body.map_err(|e| body_error(&e, settings.server.max_body_bytes))?;
    let (mut request, model) = parse_request(&body)?;
    let wants_stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    note.model = Some(model.clone());
    note.stream = wants_stream;
    let principal = principal_of(req)?;
    let resolved = resolve_model(state, &principal, &model)?;
    request.insert("model".to_owned(), Value::from(resolved.slug.clone()));
    compat::normalize(
        &mut request,
        settings.compat.mode,
        &settings.compat.default_instructions,
    );
    let call = Call {
        req,
        payload: Bytes::from(serde_json::to_vec(&request).map_err(|_| ApiError::Internal)?),
        model: &resolved.slug,
        exclude_plans: &resolved.exclude_plans,
        affinity: affinity_key(req, &request),
        carries_encrypted: carries_encrypted(&request),
    };
    let admission = super::governance::admit(state, &principal)?;
    let committed = failover::run(state, upstream, &call, ctx, note).await?;
    let reply = Reply {
        model: &model,
        wants_stream,
        admission,
    };
    answer(committed, reply, state, ctx, note).await
}

fn body_error(error: &actix_web::Error, limit: usize) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
        _ => ApiError::invalid("The request body could not be read.", None),
    }
}

/// The request as a JSON object (unknown fields and their order kept), and its model.
fn parse_request(body: &[u8]) -> Result<(Map<String, Value>, String), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request ({e})."),
            None,
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    };
    let model = check_types(&map)?;
    Ok((map, model))
}

/// Type checks of the fields the relay itself reads; everything else is the upstream's to judge.
/// Returns the model.
fn check_types(map: &Map<String, Value>) -> Result<String, ApiError> {
    let wrong = |param: &'static str, expected: &str| {
        Err(ApiError::InvalidRequest {
            message: format!("Invalid type for '{param}': expected {expected}."),
            param: Some(param),
            code: Some("invalid_type"),
        })
    };
    let model = match map.get("model") {
        None | Some(Value::Null) => {
            return Err(ApiError::InvalidRequest {
                message: "Missing required parameter: 'model'.".to_owned(),
                param: Some("model"),
                code: Some("missing_required_parameter"),
            })
        }
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => return wrong("model", "a non-empty string"),
    };
    match map.get("input") {
        None | Some(Value::String(_)) | Some(Value::Array(_)) => {}
        Some(_) => return wrong("input", "a string or an array of input items"),
    }
    for flag in ["stream", "store", "parallel_tool_calls"] {
        if !matches!(
            map.get(flag),
            None | Some(Value::Null) | Some(Value::Bool(_))
        ) {
            return wrong(flag, "a boolean");
        }
    }
    if !matches!(
        map.get("instructions"),
        None | Some(Value::Null) | Some(Value::String(_))
    ) {
        return wrong("instructions", "a string");
    }
    if map
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::InvalidRequest {
            message: "'previous_response_id' is not supported: the Codex backend does not store responses. Send the whole conversation in 'input'.".to_owned(),
            param: Some("previous_response_id"),
            code: Some("unsupported_parameter"),
        });
    }
    Ok(model)
}

/// The caller, as authentication left it in the request.
fn principal_of(req: &HttpRequest) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Internal)
}

/// The model's slug and the plans that do not serve it, or why this key may not use it.
fn resolve_model(
    state: &AppState,
    principal: &Principal,
    model: &str,
) -> Result<Resolved, ApiError> {
    state
        .models()
        .resolve(model, &principal.policy)
        .map_err(|refusal| match refusal {
            ModelRefusal::NotFound => ApiError::ModelNotFound(model.to_owned()),
            ModelRefusal::NotAllowed => ApiError::ModelNotAllowed(model.to_owned()),
        })
}

/// The conversation key that should keep a conversation on one account.
fn affinity_key(req: &HttpRequest, body: &Map<String, Value>) -> Option<String> {
    [
        "x-codex-turn-state",
        "session-id",
        "session_id",
        "thread-id",
    ]
    .iter()
    .find_map(|name| text(req.headers(), name))
    .or_else(|| body.get("prompt_cache_key").and_then(Value::as_str))
    .filter(|key| !key.trim().is_empty())
    .map(str::to_owned)
}

/// Whether the input replays encrypted reasoning (readable only by the account that wrote it).
fn carries_encrypted(body: &Map<String, Value>) -> bool {
    body.get("input")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|item| item.get("encrypted_content").is_some_and(|v| !v.is_null()))
        })
}

/// What the client asked for, as far as the answer's form goes, and the admission that lasts
/// as long as the answer.
struct Reply<'a> {
    model: &'a str,
    wants_stream: bool,
    admission: Admission,
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
    if reply.wants_stream {
        let timing = StreamTiming {
            idle_timeout: idle,
            keepalive: Duration::from_millis(state.settings().server.sse_keepalive_ms),
        };
        let line = Arc::new(OnceLock::new());
        note.line_for_stream = Some(Arc::clone(&line));
        let stream = RelayStream::new(response, lease, held, timing, ctx.log.clone())
            .with_admission(reply.admission)
            .with_access_line(line, ctx.started);
        return Ok(builder
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(stream));
    }
    let mut assembler = Assembler::default();
    assembler.push(held.prefix);
    let assembled = match held.ended {
        true => {
            let assembled = assembler.finish(reply.model);
            lease.report(outcome_of(&assembled));
            assembled
        }
        false => assemble(assembler, &mut response, lease, idle, reply.model).await?,
    };
    match assembled {
        Assembled::Response(value) => {
            record_usage(&reply.admission, &value);
            Ok(builder.json(value))
        }
        Assembled::Failed(error) => Err(super::upstream_error::from_failed_event(&error)),
        Assembled::Truncated => Err(ApiError::UpstreamFailed(
            "the upstream stream ended before the response completed",
        )),
    }
}

/// Counts an assembled response's usage against the caller's quotas.
fn record_usage(admission: &Admission, response: &Value) {
    if let Ok(usage) = serde_json::from_value::<Usage>(response["usage"].clone()) {
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

/// Reads the whole upstream stream into one Response object; the lease reports how it ended.
async fn assemble(
    mut assembler: Assembler,
    response: &mut UpstreamResponse,
    lease: Lease,
    idle: Duration,
    model: &str,
) -> Result<Assembled, ApiError> {
    match read_into(&mut assembler, response, idle).await {
        Ok(()) => {
            let assembled = assembler.finish(model);
            lease.report(outcome_of(&assembled));
            Ok(assembled)
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
    assembler: &mut Assembler,
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
        assembler.push(chunk);
    }
}
