//! `GET /responses` upgraded to a WebSocket: the Codex backend's Responses-over-WebSocket
//! transport (spec §7 and §10). The handshake is refused with a plain HTTP answer as the backend
//! refuses it: 426 when WebSockets are off ([`MockState::set_websocket`]) or the `OpenAI-Beta`
//! value is missing, then the checks of `POST /responses` (401, 400) and an account's standing
//! scripted status. Then each text message is one `{"type":"response.create", ...}` turn,
//! answered by frames that each carry one stream event, preceded by `codex.rate_limits` (the
//! rate-limit headers of an SSE answer).
//!
//! A connection remembers the responses it completed: `previous_response_id` may name only
//! those (`previous_response_not_found` otherwise; the Codex CLI then resends the full input).
//! `"generate": false` (prewarm) creates an empty response to chain to, unless the account has a
//! standing answer, which answers a prewarm too. Per-account scripts answer turns that generate:
//! a scripted status becomes an `error` frame and the connection stays open; a cut ends the
//! connection without a Close frame.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, ProtocolError, Session};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::events::{Events, ResponseCtx};
use super::responses::{self, StreamField, Turn};
use super::stream::Ending;
use super::{detail, lock, random_hex, unix_now, MockState, RecordedRequest, Scripted};

/// The `OpenAI-Beta` value without which the backend does not speak WebSocket.
const BETA: &str = "responses_websockets=2026-02-06";
/// The backend closes the socket (1009) on any message of this size or more.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// What the mock reads of one message: above [`MAX_MESSAGE_BYTES`], so that an oversize message
/// is read whole and answered with 1009 as the backend answers it, not refused by the codec.
const READ_LIMIT: usize = 2 * MAX_MESSAGE_BYTES;

/// The WebSocket side of [`MockState`].
#[derive(Default)]
pub(super) struct Sockets {
    /// Off is the exception (default on), so the flag says off.
    off: AtomicBool,
    frames: Mutex<Vec<(u64, RecordedRequest)>>,
    /// Also the source of connection ids: the n-th connection is number n.
    opened: AtomicU64,
    closed: AtomicU64,
}

impl MockState {
    /// Whether `GET /responses` upgrades to a WebSocket (default on); off, it answers 426, as a
    /// backend or relay without WebSockets does.
    pub fn set_websocket(&self, on: bool) {
        self.websocket.off.store(!on, Ordering::SeqCst);
    }

    /// Every text message received over a WebSocket, in arrival order: method `WS`, path
    /// `/responses`, the handshake's headers and peer, the message as the body.
    pub fn websocket_frames(&self) -> Vec<RecordedRequest> {
        let frames = lock(&self.websocket.frames);
        frames.iter().map(|(_, frame)| frame.clone()).collect()
    }

    /// [`MockState::websocket_frames`] with the number of the connection each came over
    /// (connections are numbered from 1 in the order they were opened).
    pub fn websocket_frames_by_connection(&self) -> Vec<(u64, RecordedRequest)> {
        lock(&self.websocket.frames).clone()
    }

    /// WebSocket connections upgraded so far.
    pub fn websocket_connections_opened(&self) -> u64 {
        self.websocket.opened.load(Ordering::SeqCst)
    }

    /// WebSocket connections ended so far, whoever ended them and however.
    pub fn websocket_connections_closed(&self) -> u64 {
        self.websocket.closed.load(Ordering::SeqCst)
    }
}

/// Whether the request asks to upgrade `/responses` to a WebSocket.
pub(super) fn is_upgrade(req: &RecordedRequest) -> bool {
    req.method == "GET"
        && req.path == "/responses"
        && req
            .header("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// 426 when WebSockets are off or the caller did not opt in: the Codex CLI then falls back to
/// SSE at once, for the whole session.
pub(super) fn unavailable(state: &MockState, req: &RecordedRequest) -> Option<HttpResponse> {
    let opted_in = req
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("openai-beta"))
        .any(|(_, value)| value.split(',').any(|v| v.trim() == BETA));
    let off = state.websocket.off.load(Ordering::SeqCst);
    (off || !opted_in).then(|| detail(StatusCode::UPGRADE_REQUIRED, "Upgrade Required"))
}

/// The handshake of normal mode: refused as the backend refuses it, else upgraded.
pub(super) fn upgrade(
    state: Arc<MockState>,
    req: &HttpRequest,
    payload: web::Payload,
    handshake: &RecordedRequest,
) -> HttpResponse {
    if let Some(refusal) = unavailable(&state, handshake) {
        return refusal;
    }
    let account = match responses::caller(&state, handshake) {
        Ok(account) => account.to_owned(),
        Err((status, reason)) => return detail(status, &reason),
    };
    // A standing error answers the handshake, so that a relay's failover meets it there.
    if let Some(Scripted::Status {
        status,
        body,
        headers,
    }) = state.standing_status_for(Some(&account))
    {
        let request_id = format!("req_{}", uuid::Uuid::new_v4().simple());
        return responses::scripted_status(status, body, &headers, &request_id);
    }
    let handshake = handshake.clone();
    accept(Arc::clone(&state), req, payload, move |id| Connection {
        id,
        state,
        account,
        handshake,
        responses: HashSet::new(),
    })
}

/// Upgrades the connection and serves it with the turns `make` builds from its number.
pub(super) fn accept<T: Turns + 'static>(
    state: Arc<MockState>,
    req: &HttpRequest,
    payload: web::Payload,
    make: impl FnOnce(u64) -> T,
) -> HttpResponse {
    let (mut response, session, messages) = match actix_ws::handle(req, payload) {
        Ok(parts) => parts,
        Err(error) => return error.error_response(),
    };
    let turn_state = format!("ts_{}", random_hex(12));
    let mut headers = vec![
        ("x-codex-turn-state", turn_state.as_str()),
        ("x-models-etag", super::models::ETAG),
    ];
    if state.drift() {
        headers.push((super::events::UNKNOWN_HEADER, "1"));
    }
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            let name = HeaderName::from_static(name);
            response.headers_mut().insert(name, value);
        }
    }
    let id = state.websocket.opened.fetch_add(1, Ordering::SeqCst) + 1;
    actix_rt::spawn(serve(make(id), CountClosed(state), session, messages));
    response
}

/// What becomes of a connection after a turn.
pub(super) enum After {
    /// Ready for the next message.
    Open,
    /// End it without a Close frame (a scripted cut), or because the peer is gone.
    End,
}

/// How a connection answers each text message; pings, close codes and sizes are common to
/// normal and bench mode.
pub(super) trait Turns {
    fn answer(&mut self, text: &str, session: &mut Session) -> impl Future<Output = After>;
}

/// Counts the connection closed however its task ends.
struct CountClosed(Arc<MockState>);

impl Drop for CountClosed {
    fn drop(&mut self) {
        self.0.websocket.closed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn serve(
    mut turns: impl Turns,
    _count: CountClosed,
    mut session: Session,
    messages: actix_ws::MessageStream,
) {
    let mut messages = messages
        .max_frame_size(READ_LIMIT)
        .aggregate_continuations()
        .max_continuation_size(READ_LIMIT);
    // Returning drops the session without a Close frame: the 101 answer's body ends and the
    // server closes the TCP connection, which the peer sees as an abnormal end.
    while let Some(message) = messages.recv().await {
        let code = match message {
            Ok(AggregatedMessage::Text(text)) if text.len() >= MAX_MESSAGE_BYTES => CloseCode::Size,
            Ok(AggregatedMessage::Text(text)) => match turns.answer(&text, &mut session).await {
                After::Open => continue,
                After::End => return,
            },
            Ok(AggregatedMessage::Binary(_)) => CloseCode::Unsupported,
            Ok(AggregatedMessage::Ping(bytes)) => match session.pong(&bytes).await {
                Ok(()) => continue,
                Err(_) => return,
            },
            Ok(AggregatedMessage::Pong(_)) => continue,
            Ok(AggregatedMessage::Close(reason)) => {
                let _ = session.close(reason).await;
                return;
            }
            Err(error) if too_big(&error) => CloseCode::Size,
            Err(_) => CloseCode::Protocol,
        };
        let _ = session.close(Some(code.into())).await;
        return;
    }
}

/// A frame or a fragmented message above what the mock reads at all.
fn too_big(error: &ProtocolError) -> bool {
    match error {
        ProtocolError::Overflow => true,
        // actix-ws reports an oversize fragmented message only by this text.
        ProtocolError::Io(error) => error.to_string().contains("maximum continuation size"),
        _ => false,
    }
}

/// One connection of normal mode.
struct Connection {
    id: u64,
    state: Arc<MockState>,
    account: String,
    handshake: RecordedRequest,
    /// Responses completed on this connection: what `previous_response_id` may name.
    responses: HashSet<String>,
}

impl Turns for Connection {
    async fn answer(&mut self, text: &str, session: &mut Session) -> After {
        self.record(text);
        let body = match self.check(text) {
            Ok(body) => body,
            Err(error) => return send(session, &[error], None).await,
        };
        let ctx = ResponseCtx::new(&body, text.len());
        let account = Some(self.account.as_str());
        // An account that answers every call the same way (always overloaded, failing) answers
        // a prewarm so too, as a backend that refuses every call would; the answers queued for
        // it wait for turns that generate.
        let scripted = if body.get("generate") == Some(&Value::Bool(false)) {
            let Some(standing) = self.state.standing_for(account) else {
                self.responses.insert(ctx.id.clone());
                return send(session, &prewarm(&ctx), None).await;
            };
            Some(standing)
        } else {
            self.state.next_scripted_for(account)
        };
        let rate_limits = rate_limits_event(self.state.used_percent_for(account));
        let delay = Some(self.state.event_delay());
        match responses::turn_with(scripted, &self.state, &ctx, &body, account) {
            Turn::Events(events, ending) => {
                let completed = events
                    .last()
                    .is_some_and(|e| e["type"] == "response.completed");
                if let After::End = send(session, &[rate_limits], None).await {
                    return After::End;
                }
                if let After::End = send(session, &events, delay).await {
                    return After::End;
                }
                match ending {
                    Ending::Cut => return After::End,
                    Ending::Complete if completed => {
                        self.responses.insert(ctx.id);
                    }
                    Ending::Complete => {}
                }
                After::Open
            }
            Turn::Status {
                status,
                body,
                headers,
            } => send(session, &[scripted_error(status, &body, &headers)], None).await,
            Turn::Raw(chunks) => {
                if let After::End = send(session, &[rate_limits], None).await {
                    return After::End;
                }
                send_texts(session, chunks.iter().map(lossy), delay).await
            }
        }
    }
}

impl Connection {
    fn record(&self, text: &str) {
        let frame = RecordedRequest {
            method: "WS".to_owned(),
            body: Bytes::copy_from_slice(text.as_bytes()),
            ..self.handshake.clone()
        };
        lock(&self.state.websocket.frames).push((self.id, frame));
    }

    /// The turn's body, or the error frame the backend answers it with.
    fn check(&self, text: &str) -> Result<Value, Value> {
        let (state, account) = (&self.state, self.account.as_str());
        let body = responses::check_turn(state, account, text.as_bytes(), StreamField::Ignored)
            .map_err(|(status, message)| refused(status, &message))?;
        if body.get("type").and_then(Value::as_str) != Some("response.create") {
            let message = "Unsupported message type: expected response.create";
            return Err(refused(StatusCode::BAD_REQUEST, message));
        }
        if let Some(id) = body.get("previous_response_id").and_then(Value::as_str) {
            if !self.responses.contains(id) {
                return Err(previous_response_not_found(id));
            }
        }
        // As over HTTP, an account with a standing answer gives it before the input is read.
        if !state.has_standing_for(Some(account)) {
            if let Some(refusal) = super::stateless::item_refusal_in(&body, Some(account)) {
                let (status, error) = refusal.error();
                return Err(json!({"type": "error", "status": status.as_u16(), "error": error}));
            }
        }
        Ok(body)
    }
}

/// The error frame for a turn the backend refuses.
fn refused(status: StatusCode, message: &str) -> Value {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json!({
        "type": "error",
        "status": status.as_u16(),
        "error": {"type": kind, "message": message},
    })
}

fn previous_response_not_found(id: &str) -> Value {
    json!({
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "message": format!("Previous response with id '{id}' not found."),
            "param": "previous_response_id",
        },
    })
}

/// A scripted HTTP error as the backend wraps one in a frame: the body's `error` object when it
/// has one, and the headers the HTTP answer would have carried.
fn scripted_error(status: u16, body: &str, headers: &[(String, String)]) -> Value {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|body| body.get("error").filter(|e| e.is_object()).cloned())
        .unwrap_or_else(|| json!({"type": "server_error", "message": body}));
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    json!({"type": "error", "status": status, "error": error, "headers": headers})
}

/// A prewarm's answer: an empty response, completed at once, that later turns can chain to.
fn prewarm(ctx: &ResponseCtx) -> Vec<Value> {
    let mut events = Events::default();
    let created = ctx.response("in_progress", Vec::new(), Value::Null);
    events.push("response.created", json!({ "response": created }));
    let usage = json!({
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    });
    let completed = ctx.response("completed", Vec::new(), usage);
    events.push("response.completed", json!({ "response": completed }));
    events.into_vec()
}

/// `codex.rate_limits` (spec §5.6) with the windows the SSE answer's `x-codex-*` headers carry.
pub(super) fn rate_limits_event((primary, secondary): (f64, f64)) -> Value {
    let now = unix_now();
    let window = |used: f64, minutes: u64, resets_in: i64| {
        let reset_at = now + resets_in;
        json!({"used_percent": used, "window_minutes": minutes, "reset_at": reset_at})
    };
    let reached = primary >= 100.0 || secondary >= 100.0;
    json!({
        "type": "codex.rate_limits",
        "plan_type": "plus",
        "rate_limits": {
            "allowed": !reached,
            "limit_reached": reached,
            "primary": window(primary, 300, 3600),
            "secondary": window(secondary, 10_080, 86_400),
        },
        "credits": null,
        "metered_limit_name": null,
        "limit_name": null,
    })
}

fn lossy(chunk: &Bytes) -> String {
    String::from_utf8_lossy(chunk).into_owned()
}

/// Sends each event as one text frame, after `delay` when there is one.
async fn send(
    session: &mut Session,
    events: &[Value],
    delay: Option<std::time::Duration>,
) -> After {
    send_texts(session, events.iter().map(Value::to_string), delay).await
}

/// Sends each text as one frame, after `delay` when there is one; [`After::End`] once the peer
/// is gone.
pub(super) async fn send_texts(
    session: &mut Session,
    texts: impl IntoIterator<Item = impl AsRef<str>>,
    delay: Option<std::time::Duration>,
) -> After {
    for text in texts {
        if let Some(delay) = delay.filter(|d| !d.is_zero()) {
            actix_rt::time::sleep(delay).await;
        }
        if session.text(text.as_ref()).await.is_err() {
            return After::End;
        }
    }
    After::Open
}
