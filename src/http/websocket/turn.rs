//! One `response.create` frame, served as `POST /v1/responses` serves a call: the key checked
//! again (a key revoked meanwhile stops at its next turn), the request rate, admission,
//! validation, model resolution, compat normalization, the failover loop, and a relay stream that
//! accounts the turn's tokens, writes its access line, metrics and audit row, and ends its lease.
//! Only the framing differs: the answer's events leave as text frames (`frames.rs`), and a
//! refusal as an `error` frame.
//!
//! A turn that names a `previous_response_id` can only continue on the upstream connection that
//! made that response: it is pinned to that connection's account, and answered
//! `previous_response_not_found` when the connection is gone or its account cannot serve.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::{web, HttpMessage, HttpRequest};
use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;
use slog::{o, Logger};

use super::super::error::ApiError;
use super::super::failover::{self, Call};
use super::super::relay_stream::{RelayStream, StreamTiming};
use super::super::responses::{affinity_key, parse_request, record_attempts, resolve_model};
use super::super::transport::Via;
use super::super::upstream_turn::UpstreamTurn;
use super::frames::EventFrames;
use crate::capture::Tee;
use crate::compat;
use crate::credentials::Principal;
use crate::edge::audit::WebSocketTurn;
use crate::edge::context::{new_request_id, AccessLine, AccessNote, RequestContext, StreamLine};
use crate::edge::guard::bearer;
use crate::edge::metrics::RequestMetrics;
use crate::edge::phases::Phases;
use crate::edge::trace::Trace;
use crate::request_body::InputFacts;
use crate::state::AppState;
use crate::upstream::websocket::SocketSlot;
use crate::upstream::UpstreamClient;

/// What every turn of one connection shares.
pub struct Connection {
    /// The handshake: its headers go upstream with every turn, as an HTTP call's do.
    pub req: HttpRequest,
    pub state: AppState,
    pub upstream: web::Data<UpstreamClient>,
    pub slot: SocketSlot,
    pub log: Logger,
}

/// How a turn is answered.
pub enum Answer {
    /// The turn's events, as they come.
    Events(Box<EventFrames>),
    /// A refusal before any event; `fatal` when the connection cannot go on (the key is gone).
    Refused { error: ApiError, fatal: bool },
}

/// Serves one `response.create` frame.
pub async fn serve(conn: &Connection, frame: Bytes) -> Answer {
    let started = Instant::now();
    let ctx = turn_context(conn, started);
    let record = conn
        .req
        .app_data::<web::Data<RequestMetrics>>()
        .map(|metrics| metrics.arrived(&ServiceRequest::from_request(conn.req.clone())));
    let mut note = AccessNote {
        stream: true,
        ..AccessNote::default()
    };
    let line = StreamLine::default();
    let mut tee = None;
    let answer = match authenticate(conn) {
        Ok(principal) => {
            let turn = Turn {
                frame,
                ctx: &ctx,
                line: line.clone(),
                tee: &mut tee,
            };
            relay(conn, &principal, turn, &mut note).await
        }
        Err(error) => Err((error, true)),
    };
    let model = note.resolved_model.clone();
    let record = record.map(|record| record.with_model(model));
    match answer {
        Ok(stream) => {
            line.put(AccessLine::of(&conn.req, note, record));
            Answer::Events(Box::new(EventFrames::new(stream)))
        }
        Err((error, fatal)) => {
            let status = actix_web::ResponseError::status_code(&error).as_u16();
            // A captured turn refused after its frame was read is recorded with its status.
            if let Some(tee) = tee.as_mut() {
                tee.answered(status);
            }
            note.error_code = error.code();
            AccessLine::of(&conn.req, note, record).write(&ctx.log, status, started);
            Answer::Refused { error, fatal }
        }
    }
}

/// One frame, where its answer is logged, and the turn's tee when a capture covers it.
struct Turn<'a> {
    frame: Bytes,
    ctx: &'a RequestContext,
    line: StreamLine,
    tee: &'a mut Option<Tee>,
}

/// The turn's own request id, log and trace, put where the access line and the audit row read
/// them: the handshake's extensions, which only this connection's turns use, one at a time.
fn turn_context(conn: &Connection, started: Instant) -> RequestContext {
    let id = new_request_id();
    let trace = Trace::of(conn.req.headers());
    let log = conn.log.new(o!("request_id" => id.clone(),
        "trace_id" => trace.trace_id, "span_id" => trace.span_id));
    let ctx = RequestContext {
        id,
        log,
        started,
        trace,
    };
    let mut extensions = conn.req.extensions_mut();
    extensions.insert(ctx.clone());
    extensions.insert(Phases::default());
    extensions.insert(WebSocketTurn);
    ctx
}

/// The handshake's key, checked again: revoked or expired since, the connection ends.
fn authenticate(conn: &Connection) -> Result<Principal, ApiError> {
    let token = bearer(conn.req.headers()).ok_or(ApiError::MissingApiKey)?;
    let now = Utc::now().timestamp();
    let principal = conn.state.keys().authenticate(token, now)?;
    conn.req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

type Refusal = (ApiError, bool);

async fn relay(
    conn: &Connection,
    principal: &Principal,
    turn: Turn<'_>,
    note: &mut AccessNote,
) -> Result<RelayStream, Refusal> {
    let Turn {
        frame,
        ctx,
        line,
        tee,
    } = turn;
    let state = &conn.state;
    let settings = state.settings();
    let refuse = |error: ApiError| (error, false);
    state
        .governor()
        .check_rate(&principal.policy)
        .map_err(|(rejection, _)| refuse(rejection.into()))?;
    let admission = super::super::governance::admit(state, principal).map_err(refuse)?;
    if frame.len() > settings.server.max_body_bytes {
        return Err(refuse(too_large(settings.server.max_body_bytes)));
    }
    let tenant = principal.policy.tenant.as_ref().map(|t| t.id.as_str());
    *tee = state
        .capture()
        .tee(&principal.key_id, tenant, &ctx.id, &frame);
    note.capture_id = tee.as_ref().and_then(|t| t.capture_id()).cloned();
    let (mut request, model) = parse_request(&frame).map_err(refuse)?;
    if request.string("type").as_deref() != Some("response.create") {
        return Err(refuse(ApiError::InvalidRequest {
            message: "Unsupported message: send {\"type\": \"response.create\", …} with the fields of a Responses request.".to_owned(),
            param: Some("type"),
            code: Some("unsupported_message_type"),
        }));
    }
    super::super::file_references::refuse_file_ids(request.get("input")).map_err(refuse)?;
    note.model = Some(model.clone());
    let resolved = resolve_model(state, principal, &model).map_err(refuse)?;
    note.resolved_model = Some(Arc::from(resolved.slug.as_str()));
    request.set("model", &resolved.slug);
    let input = InputFacts::of(request.get("input"));
    let pinned = match request.string("previous_response_id") {
        Some(previous) => match conn.slot.borrow().as_ref() {
            Some(socket) if socket.knows(&previous) => Some(socket.account_id.clone()),
            _ => return Err(refuse(ApiError::previous_response_not_found())),
        },
        None => None,
    };
    let affinity = turn_state(&request).or_else(|| affinity_key(&conn.req, &request));
    compat::normalize(
        &mut request,
        &input,
        settings.compat.mode,
        &settings.compat.default_instructions,
    );
    let prewarm = request.boolean("generate") == Some(false);
    let payload = request.forward(&frame);
    for websocket_only in ["type", "generate", "previous_response_id"] {
        request.remove(websocket_only);
    }
    let upstream_turn = UpstreamTurn {
        state: state.clone(),
        slot: conn.slot.clone(),
        http_body: request.forward(&frame),
        prewarm,
        model: resolved.slug.clone(),
        continues: pinned.is_some(),
        log: ctx.log.clone(),
    };
    let call = Call {
        req: &conn.req,
        payload,
        shown_limits: super::super::codex_limits::shown_for(state, principal),
        model: &resolved.slug,
        exclude_plans: &resolved.exclude_plans,
        affinity,
        carries_encrypted: input.carries_encrypted,
        written_by: None,
        via: Via::WebSocket(&upstream_turn),
        pinned,
    };
    let (committed, attempts) = failover::run(state, &conn.upstream, &call, ctx).await;
    let carries_encrypted = call.carries_encrypted;
    record_attempts(&conn.req, (state, ctx), attempts, carries_encrypted, note);
    let committed = committed.map_err(refuse)?;
    let timing = StreamTiming {
        idle_timeout: Duration::from_secs(settings.upstream.stream_idle_timeout_secs),
        // A WebSocket connection is kept alive by pings, not by SSE comments.
        keepalive: Duration::ZERO,
    };
    let stream = RelayStream::new(
        committed.response,
        committed.lease,
        committed.held,
        timing,
        ctx.log.clone(),
    )
    .with_admission(admission)
    .with_access_line(line, ctx.started)
    .with_capture(tee.take());
    Ok(stream)
}

/// The turn state Codex carries in `client_metadata` over a WebSocket (over HTTP it is a
/// header): the conversation's key for the pool's stickiness.
fn turn_state(request: &crate::request_body::RequestBody) -> Option<String> {
    let metadata = request.get("client_metadata")?;
    let metadata: Value = serde_json::from_str(metadata.get()).ok()?;
    metadata
        .get("x-codex-turn-state")?
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::InvalidRequest {
        message: format!(
            "The response.create message is larger than this relay accepts ({limit} bytes)."
        ),
        param: None,
        code: Some("request_too_large"),
    }
}
