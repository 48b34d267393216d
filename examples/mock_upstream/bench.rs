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
    bind, detail, launch, read_body, route, tls, MockState, MockUpstream, RecordedRequest,
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
    paced: RwLock<HashMap<usize, Arc<[Bytes]>>>,
    requests: AtomicU64,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            fast: shapes::fast(),
            paced: RwLock::default(),
            requests: AtomicU64::new(0),
        }
    }
}

impl Streams {
    fn paced(&self, chunks: usize) -> Arc<[Bytes]> {
        let cached = self.paced.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(frames) = cached.get(&chunks) {
            return Arc::clone(frames);
        }
        drop(cached);
        let mut cache = self.paced.write().unwrap_or_else(PoisonError::into_inner);
        let frames = cache
            .entry(chunks)
            .or_insert_with(|| shapes::paced(chunks).into());
        Arc::clone(frames)
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<MockState>,
    streams: web::Data<Streams>,
) -> HttpResponse {
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(status) => return detail(status, "Invalid request body"),
    };
    if req.method() == Method::POST && req.path() == "/responses" {
        return respond(&req, &body, &streams);
    }
    route(state.into_inner(), &RecordedRequest::of(&req, body))
}

fn respond(req: &HttpRequest, body: &[u8], streams: &Streams) -> HttpResponse {
    let has_bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty());
    if !has_bearer {
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
        Shape::Paced { chunks, gap } => response.streaming(paced(streams.paced(chunks), gap)),
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
