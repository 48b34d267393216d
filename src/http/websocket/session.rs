//! One client connection's life: turns one at a time, pings, and the reasons it ends, each with a
//! close code that says why — 1000 the client closed, 1001 idle or unanswered pings, 1003 a
//! binary frame, 1008 the key is no longer valid, 1009 a frame of 16 MiB or more (refused with
//! an error frame first, never sent upstream, as the backend would close on it), 1001 "relay
//! stopping" when a graceful stop begins (after the turn in flight, if any).
//!
//! Between turns the connection keeps its upstream socket (and so its account) for
//! `websocket.upstream_idle_secs`, answering the backend's pings; no lease is held meanwhile,
//! since each turn takes its own.

use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use bytes::Bytes;
use bytestring::ByteString;
use slog::{debug, info};
use tokio::time::{sleep_until, Instant};

use super::frames::error_frame;
use super::turn::{self, Answer, Connection};
use crate::governance::websockets::OpenConnection;
use crate::http::error::ApiError;

/// Frames of this size or more are refused: the backend closes the connection on them.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Missed pings after which a client is taken for gone.
const MISSED_PINGS: u32 = 2;

/// The connection's clocks, from `[websocket]`.
pub struct Clocks {
    pub idle: Duration,
    pub ping: Duration,
    pub upstream_idle: Duration,
}

/// Serves the connection until it ends; `open` counts it against its key meanwhile.
pub async fn serve(
    conn: Connection,
    mut session: actix_ws::Session,
    messages: actix_ws::MessageStream,
    open: OpenConnection,
    clocks: Clocks,
) {
    let mut messages = messages
        .max_frame_size(MAX_FRAME_BYTES - 1)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES - 1);
    let mut live = Liveness::new(clocks);
    let opened = std::time::Instant::now();
    let mut stopping = conn.state.websockets().stopping().watch();
    let close = loop {
        let event = tokio::select! {
            // Between turns only: a turn running when the stop begins finishes within the grace.
            _ = stopping.wait_for(|stopping| *stopping) => Event::Stopping,
            message = messages.recv() => Event::Message(message),
            () = sleep_until(live.next_ping) => Event::PingDue,
            () = sleep_until(live.idle_until) => Event::Idle,
            () = sleep_until(live.release_upstream_at), if conn.slot.borrow().is_some() => Event::ReleaseUpstream,
            () = idle_upstream(&conn), if conn.slot.borrow().is_some() => Event::UpstreamGone,
        };
        match event {
            Event::Message(message) => {
                live.heard();
                match on_message(&conn, &mut session, &mut messages, &mut live, message).await {
                    Flow::Continue => {}
                    Flow::Close(reason) => break reason,
                }
            }
            Event::PingDue => {
                if let Flow::Close(reason) = ping(&mut session, &mut live).await {
                    break reason;
                }
            }
            Event::Idle => break Some(reason(CloseCode::Away, "idle timeout")),
            Event::Stopping => break Some(reason(CloseCode::Away, "relay stopping")),
            Event::ReleaseUpstream | Event::UpstreamGone => {
                debug!(conn.log, "upstream WebSocket released");
                conn.slot.borrow_mut().take();
            }
        }
    };
    conn.slot.borrow_mut().take();
    // One line per connection (each turn has its own access line): how long it lived, how many
    // turns it carried, and why it ended.
    let code = close.as_ref().map(|reason| u16::from(reason.code));
    let why = close.as_ref().and_then(|reason| reason.description.clone());
    info!(conn.log, "websocket closed";
        "turns" => live.turns, "duration_ms" => opened.elapsed().as_millis() as u64,
        "close_code" => code, "why" => why);
    conn.state.websockets().closed(why_label(close.as_ref()));
    let _ = session.close(close).await;
    drop(open);
}

/// What woke the connection.
enum Event {
    Message(Option<Result<AggregatedMessage, ProtocolError>>),
    PingDue,
    Idle,
    Stopping,
    ReleaseUpstream,
    UpstreamGone,
}

enum Flow {
    Continue,
    /// Close, with the reason (`None`: the client is already gone).
    Close(Option<CloseReason>),
}

/// The connection's deadlines.
struct Liveness {
    clocks: Clocks,
    next_ping: Instant,
    idle_until: Instant,
    release_upstream_at: Instant,
    unanswered: u32,
    /// Turns served so far.
    turns: u64,
}

impl Liveness {
    fn new(clocks: Clocks) -> Liveness {
        let now = Instant::now();
        Liveness {
            next_ping: now + clocks.ping,
            idle_until: now + clocks.idle,
            release_upstream_at: now + clocks.upstream_idle,
            unanswered: 0,
            turns: 0,
            clocks,
        }
    }

    /// Anything from the client shows it is there.
    fn heard(&mut self) {
        self.unanswered = 0;
    }

    /// A turn ended: the idle clocks start again.
    fn turned(&mut self) {
        self.turns += 1;
        let now = Instant::now();
        self.idle_until = now + self.clocks.idle;
        self.release_upstream_at = now + self.clocks.upstream_idle;
    }
}

/// A ping, unless the client left the last ones unanswered.
async fn ping(session: &mut actix_ws::Session, live: &mut Liveness) -> Flow {
    if live.unanswered >= MISSED_PINGS {
        return Flow::Close(Some(reason(CloseCode::Away, "no answer to pings")));
    }
    live.unanswered += 1;
    live.next_ping = Instant::now() + live.clocks.ping;
    match session.ping(b"").await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Close(None),
    }
}

/// Waits until the upstream socket kept between turns ends (the backend closed it), answering
/// its pings meanwhile; never, when there is none.
// The slot is borrowed across the wait on purpose: this future is one arm of the connection's
// select, dropped (and the borrow with it) before any other arm's handler touches the slot.
#[allow(clippy::await_holding_refcell_ref)]
async fn idle_upstream(conn: &Connection) {
    let mut slot = conn.slot.borrow_mut();
    match slot.as_mut() {
        Some(socket) => socket.closed().await,
        None => std::future::pending().await,
    }
}

async fn on_message(
    conn: &Connection,
    session: &mut actix_ws::Session,
    messages: &mut AggregatedMessageStream,
    live: &mut Liveness,
    message: Option<Result<AggregatedMessage, ProtocolError>>,
) -> Flow {
    match message {
        Some(Ok(AggregatedMessage::Text(text))) => {
            let flow = Box::pin(run_turn(conn, session, messages, live, text.into_bytes())).await;
            live.turned();
            flow
        }
        Some(Ok(AggregatedMessage::Binary(_))) => {
            let error = ApiError::InvalidRequest {
                message: "Binary frames are not part of the protocol: send response.create as a text frame.".to_owned(),
                param: None,
                code: Some("unsupported_frame"),
            };
            let _ = session.text(error_frame(&error)).await;
            Flow::Close(Some(reason(CloseCode::Unsupported, "binary frame")))
        }
        Some(Ok(AggregatedMessage::Ping(payload))) => match session.pong(&payload).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close(None),
        },
        Some(Ok(AggregatedMessage::Pong(_))) => Flow::Continue,
        Some(Ok(AggregatedMessage::Close(_))) => Flow::Close(Some(reason(CloseCode::Normal, ""))),
        Some(Err(ProtocolError::Overflow)) => {
            let _ = session.text(error_frame(&frame_too_large())).await;
            Flow::Close(Some(reason(CloseCode::Size, "frame of 16 MiB or more")))
        }
        // The connection broke (a client that exits without a close frame): nobody to tell.
        Some(Err(ProtocolError::Io(_))) | None => Flow::Close(None),
        Some(Err(_)) => Flow::Close(Some(reason(CloseCode::Protocol, "protocol error"))),
    }
}

fn frame_too_large() -> ApiError {
    ApiError::InvalidRequest {
        message: format!(
            "The message is {MAX_FRAME_BYTES} bytes or more, which the Codex backend refuses; it was not sent. Start a new conversation or send less input."
        ),
        param: None,
        code: Some("frame_too_large"),
    }
}

/// The `why` label of a connection's end.
fn why_label(close: Option<&CloseReason>) -> &'static str {
    let Some(close) = close else {
        return "client_gone";
    };
    match (close.code, close.description.as_deref()) {
        (CloseCode::Normal, _) => "client",
        (CloseCode::Away, Some("idle timeout")) => "idle",
        (CloseCode::Away, Some("relay stopping")) => "relay_stopping",
        (CloseCode::Away, _) => "unanswered_pings",
        (CloseCode::Unsupported, _) => "binary_frame",
        (CloseCode::Size, _) => "too_large",
        (CloseCode::Policy, _) => "key_invalid",
        _ => "protocol_error",
    }
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: (!description.is_empty()).then(|| description.to_owned()),
    }
}

/// Serves one turn, answering pings and noticing a close meanwhile; a second `response.create`
/// while one runs is refused (the backend serves one turn at a time per connection).
async fn run_turn(
    conn: &Connection,
    session: &mut actix_ws::Session,
    messages: &mut AggregatedMessageStream,
    live: &mut Liveness,
    frame: Bytes,
) -> Flow {
    let answer = turn::serve(conn, frame).await;
    let mut events = match answer {
        Answer::Events(events) => events,
        Answer::Refused { error, fatal } => {
            if session.text(error_frame(&error)).await.is_err() {
                return Flow::Close(None);
            }
            return match fatal {
                true => Flow::Close(Some(reason(CloseCode::Policy, "API key no longer valid"))),
                false => Flow::Continue,
            };
        }
    };
    loop {
        let next: Option<ByteString> = tokio::select! {
            event = events.next() => match event {
                Some(event) => Some(event),
                None => return Flow::Continue,
            },
            message = messages.recv() => {
                live.heard();
                match message {
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        if session.pong(&payload).await.is_err() {
                            return Flow::Close(None);
                        }
                        None
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => None,
                    Some(Ok(AggregatedMessage::Text(_))) => {
                        let error = ApiError::InvalidRequest {
                            message: "A response is still in progress on this connection: send the next response.create after its last event.".to_owned(),
                            param: None,
                            code: Some("turn_in_progress"),
                        };
                        Some(error_frame(&error))
                    }
                    // Anything else ends the connection, and the turn with it.
                    other => return Box::pin(on_message(conn, session, messages, live, other)).await,
                }
            }
            () = sleep_until(live.next_ping) => match ping(session, live).await {
                Flow::Continue => None,
                close => return close,
            },
        };
        if let Some(frame) = next {
            if session.text(frame).await.is_err() {
                return Flow::Close(None);
            }
        }
    }
}
