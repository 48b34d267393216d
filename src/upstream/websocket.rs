//! The Codex backend over a WebSocket (`GET …/responses` upgraded, `OpenAI-Beta:
//! responses_websockets=2026-02-06`): one connection per client connection, bound to the
//! account whose token opened it, one `response.create` frame per turn.
//!
//! A turn is handed to the rest of the relay as an ordinary upstream answer
//! ([`UpstreamResponse`]): an `error` frame that comes first becomes a response with that frame's
//! status, headers and error body, exactly like the HTTP answer it stands for; any other first
//! frame becomes a 200 whose body is the turn's frames as server-sent events (`data: <frame>`,
//! each frame's text untouched), ending after the turn's terminal event. So the failover loop,
//! the hold-back, the stream watcher and the relay stream judge and govern a WebSocket turn as
//! they do an HTTP one. The connection goes back to its [`SocketSlot`] when the turn ends
//! cleanly; a turn cut short takes it down with it, as its state is then unknown.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_codec::Framed;
use actix_http::{BoxedPayloadStream, Payload};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use awc::error::{PayloadError, SendRequestError, WsClientError};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{SinkExt, Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use relay_actors::{AccountId, Lease};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::event_fields::response_id;
use super::headers;
use super::sse::type_of_data;
use super::UpstreamResponse;

/// The beta the Codex CLI asks for, and the one the relay speaks with the backend.
pub const BETA: &str = "responses_websockets=2026-02-06";

/// Largest frame read from the backend: a completed response carries every output item.
const MAX_UPSTREAM_FRAME: usize = 64 * 1024 * 1024;

/// An open upstream WebSocket and what the backend knows on it.
pub struct UpstreamSocket {
    framed: Framed<BoxedSocket, Codec>,
    pub account_id: AccountId,
    /// The token version the connection was opened with: a renewed lease opens a new one.
    pub token_version: i64,
    /// Responses completed on this connection: the only ones `previous_response_id` may name.
    responses: HashSet<String>,
}

impl UpstreamSocket {
    pub fn knows(&self, response_id: &str) -> bool {
        self.responses.contains(response_id)
    }

    /// Answers the backend's pings while no turn runs; resolves once the connection has ended
    /// (closed by the backend, broken, or sent a frame of no turn).
    pub async fn closed(&mut self) {
        loop {
            match self.framed.next().await {
                Some(Ok(Frame::Ping(payload))) => {
                    if self.framed.send(Message::Pong(payload)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Pong(_))) => {}
                _ => return,
            }
        }
    }
}

/// Until when turns go over HTTP because the upstream refused a WebSocket (`websocket.fallback_secs`
/// from the refusal), shared by every connection, and how often that happened.
#[derive(Default)]
pub struct Fallback {
    /// Unix milliseconds until which no upstream WebSocket is tried (0: they are).
    http_until_ms: AtomicU64,
    refusals: Counter,
}

impl Fallback {
    pub fn register(registry: &mut Registry) -> Fallback {
        let fallback = Fallback::default();
        registry.register(
            "websocket_upstream_refusals",
            "Times the upstream refused a WebSocket (426), each starting websocket.fallback_secs of turns over HTTP",
            fallback.refusals.clone(),
        );
        fallback
    }

    /// The upstream refused a WebSocket: turns go over HTTP for `period`.
    pub fn fall_back_for(&self, period: Duration) {
        let until = now_ms().saturating_add(period.as_millis() as u64);
        self.http_until_ms.store(until, Ordering::Relaxed);
        self.refusals.inc();
    }

    /// Whether turns go over HTTP now.
    pub fn falls_back(&self) -> bool {
        self.http_until_ms.load(Ordering::Relaxed) > now_ms()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a client connection keeps its upstream socket between turns.
pub type SocketSlot = Rc<RefCell<Option<UpstreamSocket>>>;

/// Opens an upstream WebSocket with `lease`'s token. The client's Codex headers go along, as
/// on the HTTP path.
pub async fn connect(
    client: &awc::Client,
    url: &str,
    lease: &Lease,
    client_headers: &HeaderMap,
    identity: (&str, &str),
) -> Result<UpstreamSocket, WsClientError> {
    let token = format!("Bearer {}", lease.credentials.access_token.expose_secret());
    let mut request = client
        .ws(url)
        .max_frame_size(MAX_UPSTREAM_FRAME)
        .set_header("authorization", token)
        .set_header(
            "chatgpt-account-id",
            lease.credentials.chatgpt_account_id.as_str(),
        )
        .set_header("openai-beta", BETA);
    if lease.credentials.is_fedramp {
        request = request.set_header("x-openai-fedramp", "true");
    }
    for (name, value) in client_headers {
        if headers::forwarded_to_upstream(name) && name.as_str() != "openai-beta" {
            request = request.header(name.clone(), value.clone());
        }
    }
    let (originator, agent) = identity;
    request = request
        .set_header_if_none("originator", originator)
        .set_header_if_none("user-agent", agent);
    let (_, framed) = request.connect().await?;
    Ok(UpstreamSocket {
        framed,
        account_id: lease.account_id.clone(),
        token_version: lease.token_version,
        responses: HashSet::new(),
    })
}

/// Sends one turn's `response.create` frame on `socket` and answers with the turn as an upstream
/// response (see the module comment). `first_frame_within` bounds the wait for the backend's
/// first frame, as the response timeout bounds an HTTP answer's head.
pub async fn turn(
    mut socket: UpstreamSocket,
    frame: Bytes,
    slot: SocketSlot,
    first_frame_within: Duration,
) -> Result<UpstreamResponse, SendRequestError> {
    let text = ByteString::try_from(frame).map_err(|_| invalid_frame())?;
    socket.framed.send(Message::Text(text)).await.map_err(|e| {
        SendRequestError::Send(io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))
    })?;
    // The backend's rate limits come first, as an event; they are the account's, read like the
    // HTTP answer's `x-codex-*` headers (and the event itself is replaced by the caller's own).
    let mut leading = VecDeque::new();
    let mut headers = HeaderMap::new();
    let deadline = tokio::time::Instant::now() + first_frame_within;
    let first = loop {
        let next = tokio::time::timeout_at(deadline, next_text(&mut socket)).await;
        let text = match next {
            Ok(Ok(text)) => text,
            Ok(Err(())) => return Err(closed()),
            Err(_elapsed) => return Err(SendRequestError::Timeout),
        };
        if type_of_data(&text) != Some("codex.rate_limits") {
            break text;
        }
        rate_limit_headers(&text, &mut headers);
        leading.push_back(text);
    };
    if let Some(error) = ErrorFrame::read(&first) {
        // The backend keeps the connection after an error frame; so does the relay, unless the
        // frame refused the connection's token.
        if error.status != StatusCode::UNAUTHORIZED {
            *slot.borrow_mut() = Some(socket);
        }
        return Ok(error.into_response(headers));
    }
    leading.push_back(first);
    let frames = Frames {
        socket: Some(socket),
        pending: leading,
        slot,
    };
    let body = Box::pin(frames.into_stream());
    Ok(response(StatusCode::OK, headers, body))
}

/// The windows of a `codex.rate_limits` event as the `x-codex-*` headers an HTTP answer carries.
fn rate_limit_headers(text: &[u8], headers: &mut HeaderMap) {
    let Ok(event) = serde_json::from_slice::<Value>(text) else {
        return;
    };
    for which in ["primary", "secondary"] {
        let window = &event["rate_limits"][which];
        for (field, header) in [
            ("used_percent", "used-percent"),
            ("window_minutes", "window-minutes"),
            ("reset_at", "reset-at"),
        ] {
            let value = match &window[field] {
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            let name = format!("x-codex-{which}-{header}");
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                headers.insert(name, value);
            }
        }
    }
}

/// The next data frame's text, answering pings on the way; `Err` when the connection ended.
async fn next_text(socket: &mut UpstreamSocket) -> Result<Bytes, ()> {
    loop {
        match socket.framed.next().await {
            Some(Ok(Frame::Text(text))) => return Ok(text),
            Some(Ok(Frame::Ping(payload))) => {
                socket
                    .framed
                    .send(Message::Pong(payload))
                    .await
                    .map_err(|_| ())?;
            }
            Some(Ok(Frame::Pong(_))) => {}
            // Binary frames are not part of the protocol; a close or an error ends the turn.
            _ => return Err(()),
        }
    }
}

/// A turn's frames, from those already read, until its terminal event.
struct Frames {
    socket: Option<UpstreamSocket>,
    pending: VecDeque<Bytes>,
    slot: SocketSlot,
}

impl Frames {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, PayloadError>> {
        futures_util::stream::unfold(self, |mut frames| async move {
            let text = match frames.pending.pop_front() {
                Some(first) => first,
                None => {
                    let socket = frames.socket.as_mut()?;
                    match next_text(socket).await {
                        Ok(text) => text,
                        // The socket goes with `frames`: a turn cut short leaves it unusable.
                        Err(()) => return None,
                    }
                }
            };
            if let Some(kind) = terminal_kind(&text) {
                frames.ended(kind, &text);
            }
            Some((Ok(as_event(&text)), frames))
        })
    }

    /// The turn's terminal frame: the socket goes back to its slot, knowing the response if it
    /// completed.
    fn ended(&mut self, kind: Terminal, text: &[u8]) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        if kind == Terminal::Completed {
            if let Some(id) = response_id(text) {
                socket.responses.insert(id);
            }
        }
        *self.slot.borrow_mut() = Some(socket);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    Completed,
    Other,
}

/// Whether a frame ends its turn (read as the SSE watcher reads an event's type).
fn terminal_kind(text: &[u8]) -> Option<Terminal> {
    match type_of_data(text)? {
        "response.completed" => Some(Terminal::Completed),
        "response.failed" | "response.incomplete" | "error" => Some(Terminal::Other),
        _ => None,
    }
}

/// A frame as the server-sent event it stands for.
pub fn as_event(text: &[u8]) -> Bytes {
    let mut event = BytesMut::with_capacity(text.len() + 8);
    event.put_slice(b"data: ");
    event.put_slice(text);
    event.put_slice(b"\n\n");
    event.freeze()
}

/// An upstream answer made by the relay: awc builds its responses only for its own requests,
/// and its test response is the one public way to make one, which is then given the head and
/// body the WebSocket turn stands for.
pub fn response(
    status: StatusCode,
    headers: HeaderMap,
    body: BoxedPayloadStream,
) -> UpstreamResponse {
    awc::test::TestResponse::default()
        .finish()
        .map_body(move |head, _| {
            head.status = status;
            head.headers = headers;
            Payload::from(body)
        })
}

/// `{"type":"error","status":429,"error":{…},"headers":{…}}`: the backend's answer to a turn it
/// refuses, mapped by clients like an HTTP answer with that status and headers.
struct ErrorFrame {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl ErrorFrame {
    fn read(text: &[u8]) -> Option<ErrorFrame> {
        terminal_kind(text)?;
        let value: Value = serde_json::from_slice(text).ok()?;
        if value.get("type")?.as_str()? != "error" {
            return None;
        }
        let status = value
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| !s.is_success())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let mut headers = HeaderMap::new();
        for (name, value) in value
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(text),
            ) {
                headers.append(name, value);
            }
        }
        let error = value.get("error").cloned().unwrap_or(Value::Null);
        let body = serde_json::to_vec(&serde_json::json!({ "error": error })).ok()?;
        Some(ErrorFrame {
            status,
            headers,
            body: Bytes::from(body),
        })
    }

    /// The answer it stands for; `limits` are the rate-limit headers read before it.
    fn into_response(mut self, limits: HeaderMap) -> UpstreamResponse {
        for (name, value) in limits {
            self.headers.insert(name, value);
        }
        let body = futures_util::stream::once(async move { Ok(self.body) });
        response(self.status, self.headers, Box::pin(body))
    }
}

fn closed() -> SendRequestError {
    SendRequestError::Send(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the upstream WebSocket closed",
    ))
}

fn invalid_frame() -> SendRequestError {
    SendRequestError::Send(io::Error::new(
        io::ErrorKind::InvalidData,
        "the turn is not valid UTF-8 text",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_upstream_websocket_is_skipped_for_the_period_only() {
        let fallback = Fallback::default();
        assert!(!fallback.falls_back());
        fallback.fall_back_for(Duration::from_secs(60));
        assert!(fallback.falls_back());
        fallback.fall_back_for(Duration::ZERO);
        assert!(!fallback.falls_back());
    }

    #[test]
    fn a_rate_limit_event_reads_as_the_headers_of_an_http_answer() {
        let event = br#"{"type":"codex.rate_limits","rate_limits":{"primary":{"used_percent":42.5,"window_minutes":300,"reset_at":1700000000},"secondary":{"used_percent":3,"window_minutes":10080}}}"#;
        let mut headers = HeaderMap::new();
        rate_limit_headers(event, &mut headers);
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(value("x-codex-primary-used-percent"), Some("42.5"));
        assert_eq!(value("x-codex-primary-window-minutes"), Some("300"));
        assert_eq!(value("x-codex-primary-reset-at"), Some("1700000000"));
        assert_eq!(value("x-codex-secondary-used-percent"), Some("3"));
        assert_eq!(value("x-codex-secondary-reset-at"), None);
    }

    #[test]
    fn an_error_frame_reads_as_the_http_answer_it_stands_for() {
        let frame = br#"{"type":"error","status":429,"error":{"type":"usage_limit_reached","message":"limit"},"headers":{"x-codex-primary-used-percent":"100","retry-after":30}}"#;
        let error = ErrorFrame::read(frame).unwrap();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.headers.get("retry-after").unwrap(), "30");
        assert_eq!(
            error.headers.get("x-codex-primary-used-percent").unwrap(),
            "100"
        );
        let body: Value = serde_json::from_slice(&error.body).unwrap();
        assert_eq!(body["error"]["type"], "usage_limit_reached");
        assert!(ErrorFrame::read(br#"{"type":"response.created"}"#).is_none());
        let no_status = ErrorFrame::read(br#"{"type":"error","error":{}}"#).unwrap();
        assert_eq!(no_status.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_turn_ends_at_its_terminal_event_only() {
        assert_eq!(
            terminal_kind(br#"{"type":"response.completed","response":{}}"#),
            Some(Terminal::Completed)
        );
        for other in ["response.failed", "response.incomplete", "error"] {
            let frame = format!(r#"{{"type":"{other}"}}"#);
            assert_eq!(terminal_kind(frame.as_bytes()), Some(Terminal::Other));
        }
        let delta = br#"{"type":"response.output_text.delta","delta":"response.completed"}"#;
        assert_eq!(terminal_kind(delta), None);
    }
}
