//! Bench mode (`mock_upstream --bench`): the mock as the upstream of a load test, where it must
//! never be what is measured. `POST /responses` is answered from byte frames built once (see
//! `bench_shapes.rs`): no request is recorded (normal mode keeps every request in a `Vec`, which
//! grows without bound under load), and no JSON is read but the request's `input`, for its
//! marker. Auth is only checked for presence, so the caller still has to send a bearer.
//!
//! The marker, anywhere in `input` (a string, or a message's text):
//!
//! | marker             | answer                                                          |
//! |--------------------|-----------------------------------------------------------------|
//! | `bench fast`       | 58 events, ~18 KB, in one chunk (also the answer without one)   |
//! | `bench paced N M`  | N chunks, M ms apart, the first at once                         |
//!
//! `GET /responses` upgrades to a WebSocket (unless switched off, as in normal mode): each
//! `response.create` message is answered with the same prebuilt events, one frame each, chosen
//! by the same marker (a paced chunk's events go out together), after a prebuilt
//! `codex.rate_limits`; nothing is recorded, no `previous_response_id` is checked.
//!
//! Every other path (`/models`, `/oauth/token`, logins) is answered as in normal mode, without
//! recording it either. Bench mode runs any number of workers (threads).

#[path = "bench_shapes.rs"]
mod shapes;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::Value;

use super::{
    bind, body_lasts_until_close, detail, launch, read_body, route, tls, websocket, MockState,
    MockUpstream, RecordedRequest,
};

/// The longest paced answer and the longest pause between its chunks: bounds, so a typo in a
/// marker cannot hold a connection for hours.
const MAX_CHUNKS: usize = 10_000;
const MAX_GAP: Duration = Duration::from_secs(60);
/// Idle keep-alive of the mock's connections: longer than any client pool keeps one idle (awc:
/// 15 s), so it is always the caller that closes an idle connection, never a race with it.
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Where the bench mock also serves HTTPS (HTTP/2 or HTTP/1.1), and where it writes the PEM of
/// its self-signed certificate.
pub struct TlsListen<'a> {
    pub listen: &'a str,
    pub cert_out: &'a Path,
}

/// Binds `listen` (and `tls.listen`) and serves bench mode with `workers` threads; returns once
/// bound, with the TLS listener's address.
///
/// # Errors
/// When an address cannot be resolved or bound, or the certificate cannot be made or written.
pub async fn start(
    listen: &str,
    workers: usize,
    tls: Option<TlsListen<'_>>,
) -> io::Result<(MockUpstream, Option<SocketAddr>)> {
    let (listener, addr) = bind(listen)?;
    let tls = match tls {
        Some(tls) => Some((bind(tls.listen)?, tls::server_config(tls.cert_out)?)),
        None => None,
    };
    let tls_addr = tls.as_ref().map(|((_, addr), _)| *addr);
    let state = Arc::new(MockState::default());
    let data = web::Data::from(Arc::clone(&state));
    let streams = web::Data::new(Streams::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(streams.clone())
            .default_service(web::to(dispatch))
    })
    .workers(workers.max(1))
    .disable_signals()
    .h1_allow_half_closed(false)
    .keep_alive(KEEP_ALIVE)
    // Paced chunks are small writes: with Nagle on, each would wait for the caller's delayed
    // ACK (~40 ms) and the pacing measured would be the kernel's.
    .tcp_nodelay(true)
    .shutdown_timeout(1)
    .listen(listener)?;
    let server = match tls {
        Some(((listener, _), config)) => server.listen_rustls_0_23(listener, config)?,
        None => server,
    };
    Ok((launch(server.run(), addr, state), tls_addr))
}

/// The answers, built on first use and shared by every worker.
struct Streams {
    fast: Bytes,
    /// The fast answer as WebSocket frame texts, one group per SSE chunk.
    fast_frames: Frames,
    paced: RwLock<HashMap<usize, Paced>>,
    /// `codex.rate_limits`, sent before each WebSocket answer (an SSE answer's headers).
    rate_limits: String,
    requests: AtomicU64,
}

/// Frame texts in groups: a group goes out at once, as one SSE chunk does.
type Frames = Arc<[Vec<String>]>;

/// A paced answer, as SSE chunks and as the same chunks of frames.
#[derive(Clone)]
struct Paced {
    chunks: Arc<[Bytes]>,
    frames: Frames,
}

impl Default for Streams {
    fn default() -> Self {
        let fast = shapes::fast();
        Streams {
            fast: shapes::join(&fast),
            fast_frames: vec![shapes::texts(&fast)].into(),
            paced: RwLock::default(),
            rate_limits: super::websocket::rate_limits_event((12.5, 3.0)).to_string(),
            requests: AtomicU64::new(0),
        }
    }
}

impl Streams {
    /// The paced answer in `chunks` chunks, as SSE chunks and as frame groups.
    fn paced(&self, chunks: usize) -> Paced {
        let cached = self.paced.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(paced) = cached.get(&chunks) {
            return paced.clone();
        }
        drop(cached);
        let mut cache = self.paced.write().unwrap_or_else(PoisonError::into_inner);
        let paced = cache.entry(chunks).or_insert_with(|| {
            let groups = shapes::paced(chunks);
            Paced {
                chunks: groups.iter().map(|group| shapes::join(group)).collect(),
                frames: groups.iter().map(|group| shapes::texts(group)).collect(),
            }
        });
        paced.clone()
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<MockState>,
    streams: web::Data<Streams>,
) -> HttpResponse {
    // Before the body is read: a handshake's "body" is the connection's frames. Only then is
    // a record built, as the handshake checks read one; other requests are not slowed by it.
    if req.method() == Method::GET && req.path() == "/responses" && body_lasts_until_close(&req) {
        let handshake = RecordedRequest::of(&req, Bytes::new());
        return upgrade(state.into_inner(), &req, payload, &handshake, streams);
    }
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(status) => return detail(status, "Invalid request body"),
    };
    if req.method() == Method::POST && req.path() == "/responses" {
        return respond(&req, &body, &streams);
    }
    route(state.into_inner(), &RecordedRequest::of(&req, body))
}

fn has_bearer(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
}

fn respond(req: &HttpRequest, body: &[u8], streams: &Streams) -> HttpResponse {
    if !has_bearer(req) {
        return detail(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let n = streams.requests.fetch_add(1, Ordering::Relaxed);
    let mut response = HttpResponse::Ok();
    let request_id = format!("req_bench_{n}");
    super::responses::stream_headers(&mut response, shapes::MODEL, &request_id, (12.5, 3.0));
    match Shape::of(body) {
        Shape::Fast => {
            let once = stream::once(std::future::ready(Ok::<_, io::Error>(streams.fast.clone())));
            response.streaming(once)
        }
        Shape::Paced { chunks, gap } => {
            response.streaming(paced(streams.paced(chunks).chunks, gap))
        }
    }
}

/// The handshake of bench mode: 426 as in normal mode, the bearer only checked for presence.
fn upgrade(
    state: Arc<MockState>,
    req: &HttpRequest,
    payload: web::Payload,
    handshake: &RecordedRequest,
    streams: web::Data<Streams>,
) -> HttpResponse {
    if let Some(refusal) = websocket::unavailable(&state, handshake) {
        return refusal;
    }
    if !has_bearer(req) {
        return detail(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    websocket::accept(state, req, payload, |_| BenchTurns(streams))
}

/// Answers every `response.create` with the answer its marker names, from prebuilt frames.
struct BenchTurns(web::Data<Streams>);

impl websocket::Turns for BenchTurns {
    async fn answer(&mut self, text: &str, session: &mut actix_ws::Session) -> websocket::After {
        let streams = &self.0;
        let (groups, gap) = match Shape::of(text.as_bytes()) {
            Shape::Fast => (Arc::clone(&streams.fast_frames), Duration::ZERO),
            Shape::Paced { chunks, gap } => (streams.paced(chunks).frames, gap),
        };
        let rate_limits = [streams.rate_limits.as_str()];
        if let websocket::After::End = websocket::send_texts(session, rate_limits, None).await {
            return websocket::After::End;
        }
        for (i, group) in groups.iter().enumerate() {
            if i > 0 {
                actix_rt::time::sleep(gap).await;
            }
            if let websocket::After::End = websocket::send_texts(session, group, None).await {
                return websocket::After::End;
            }
        }
        websocket::After::Open
    }
}

/// The chunks, the first at once and each next one `gap` later.
fn paced(
    frames: Arc<[Bytes]>,
    gap: Duration,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    stream::unfold((frames, 0), move |(frames, i)| async move {
        let frame = frames.get(i)?.clone();
        if i > 0 {
            actix_rt::time::sleep(gap).await;
        }
        Some((Ok(frame), (frames, i + 1)))
    })
}

/// The one field bench mode reads.
#[derive(Deserialize)]
struct Marked {
    input: Value,
}

#[derive(Debug, PartialEq)]
enum Shape {
    Fast,
    Paced { chunks: usize, gap: Duration },
}

impl Shape {
    fn of(body: &[u8]) -> Shape {
        serde_json::from_slice::<Marked>(body)
            .ok()
            .and_then(|marked| marker(&marked.input).map(Shape::parse))
            .unwrap_or(Shape::Fast)
    }

    /// `bench paced N M`; anything else is the fast answer.
    fn parse(marker: &str) -> Shape {
        let mut words = marker.split_whitespace().skip(1);
        if words.next() != Some("paced") {
            return Shape::Fast;
        }
        let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
        match (number(), number()) {
            (Some(chunks), Some(ms)) => Shape::Paced {
                chunks: usize::try_from(chunks)
                    .unwrap_or(MAX_CHUNKS)
                    .min(MAX_CHUNKS),
                gap: Duration::from_millis(ms).min(MAX_GAP),
            },
            _ => Shape::Fast,
        }
    }
}

/// The first text in `input` that starts with `bench `: the string itself, or a message's text.
fn marker(input: &Value) -> Option<&str> {
    match input {
        Value::String(text) => text.starts_with("bench ").then_some(text.as_str()),
        Value::Array(items) => items.iter().find_map(marker),
        Value::Object(fields) => fields.values().find_map(marker),
        _ => None,
    }
}
