//! A mock of the Codex backend (`https://chatgpt.com/backend-api/codex`) and of its OAuth issuer,
//! for codex-relay's integration tests and for operators who want to try the relay offline.
//!
//! This file owns the public surface ([`MockUpstream`], [`MockState`], [`RecordedRequest`],
//! [`Scripted`], [`fake_auth_json`], [`fake_jwt`]), the HTTP server and the routing. The
//! behaviour of each endpoint lives in the sibling files:
//!
//! | file           | owns                                                               |
//! |----------------|--------------------------------------------------------------------|
//! | `responses.rs` | `POST /responses`: auth, backend 400s, a deep body's 500, scripts  |
//! | `accounts.rs`  | per-account scripts (by `ChatGPT-Account-ID`) and request counts  |
//! | `stateless.rs` | what the backend refuses because it stores nothing (references)   |
//! | `events.rs`    | the Responses stream events (text, tool call, failure)             |
//! | `compaction.rs` | remote compaction: input ending in `compaction_trigger`           |
//! | `stream.rs`    | the SSE body: per-event delay, cuts, started/finished/cancelled    |
//! | `oauth.rs`     | `POST /oauth/token`, the unsigned JWTs and the fake `auth.json`    |
//! | `token_script.rs` | scripted token-endpoint failures, token lifetime, counters      |
//! | `login.rs`     | `/oauth/authorize` and the device-code endpoints                   |
//! | `models.rs`    | `GET /models`, the Codex model catalog (per account, when set)     |
//! | `websocket.rs` | `GET /responses` upgraded: turns over a WebSocket, per connection  |
//! | `bench.rs`     | bench mode: prebuilt streams, nothing recorded, several workers    |
//! | `tests.rs`     | the mock's own tests (run wherever this file is included)          |
//!
//! Integration tests include this file with `#[path]`, so sibling modules are declared with
//! explicit `#[path]` attributes: they then resolve next to this file however it is included.
//!
//! The mock answers as the Codex backend and its issuer answer the Codex CLI, as far as the CLI's
//! public source (openai/codex, `codex-rs/`) and the issue reports of other Codex relays show.

// The example binary and each test binary use a different subset of this module.
#![allow(dead_code)]

#[path = "accounts.rs"]
mod accounts;
#[path = "bench.rs"]
pub mod bench;
#[path = "compaction.rs"]
mod compaction;
#[path = "events.rs"]
mod events;
#[path = "login.rs"]
mod login;
#[path = "models.rs"]
mod models;
#[path = "oauth.rs"]
mod oauth;
#[path = "responses.rs"]
mod responses;
#[path = "stateless.rs"]
mod stateless;
#[path = "stream.rs"]
mod stream;
#[path = "tls.rs"]
pub mod tls;
#[path = "token_script.rs"]
mod token_script;
#[path = "websocket.rs"]
mod websocket;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{dev::ServerHandle, web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rand::RngCore;

// Re-exported for tests; a crate that uses neither would otherwise warn.
#[allow(unused_imports)]
pub use login::{DeviceOutcome, LoginScript};
#[allow(unused_imports)]
pub use models::REQUIRED_CATALOG_FIELDS;
#[allow(unused_imports)]
pub use oauth::{fake_auth_json, fake_jwt};
#[allow(unused_imports)]
pub use responses::MAX_NESTING;
#[allow(unused_imports)]
pub use token_script::TokenFailure;

/// Request bodies above this size are refused with 413; real Codex turns are well below it.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A running mock upstream. [`MockUpstream::stop`] shuts it down and waits; dropping it shuts
/// it down without waiting.
pub struct MockUpstream {
    /// The bound address (the real port when port 0 was asked for).
    pub addr: SocketAddr,
    /// What the mock has seen, and the knobs that script its answers.
    pub state: Arc<MockState>,
    handle: ServerHandle,
    /// `http`, or `https` for [`MockUpstream::start_tls`].
    scheme: &'static str,
}

impl MockUpstream {
    /// Binds `listen` (port 0 allowed) and starts serving with one worker on the current
    /// actix runtime. Returns as soon as the socket is bound.
    ///
    /// # Errors
    /// When `listen` cannot be resolved or bound.
    pub async fn start(listen: &str) -> std::io::Result<MockUpstream> {
        Self::serve(listen, None).await
    }

    /// Like [`MockUpstream::start`], over HTTPS (HTTP/2 or HTTP/1.1, as the Codex backend), with
    /// a self-signed certificate whose PEM is written to `cert_out`.
    ///
    /// # Errors
    /// When `listen` cannot be bound or the certificate cannot be made or written.
    pub async fn start_tls(
        listen: &str,
        cert_out: &std::path::Path,
    ) -> std::io::Result<MockUpstream> {
        Self::serve(listen, Some(tls::server_config(cert_out)?)).await
    }

    async fn serve(
        listen: &str,
        tls: Option<rustls::ServerConfig>,
    ) -> std::io::Result<MockUpstream> {
        let (listener, addr) = bind(listen)?;
        let state = Arc::new(MockState::default());
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(dispatch))
        })
        .workers(1)
        // Tests own the lifecycle; Ctrl-C handling belongs to the example's main.
        .disable_signals()
        // A closed read half means the caller went away: drop the stream at once so that
        // cancellations are counted promptly instead of at the next failed write.
        .h1_allow_half_closed(false)
        .shutdown_timeout(1);
        let (server, scheme) = match tls {
            Some(config) => (server.listen_rustls_0_23(listener, config)?, "https"),
            None => (server.listen(listener)?, "http"),
        };
        let mut mock = launch(server.run(), addr, state);
        mock.scheme = scheme;
        Ok(mock)
    }

    /// The base URL, e.g. `http://127.0.0.1:9090`, without a trailing slash. It serves both the
    /// Codex backend paths (`/responses`, `/models`) and the OAuth issuer paths (`/oauth/token`).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            // A wildcard bind is reached through loopback.
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("{}://{addr}", self.scheme)
    }

    /// Stops the server at once, closing open streams, and waits until it has stopped.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Binds `listen` (port 0 allowed), with the relay's deep accept queue: a load test connects
/// thousands at once.
fn bind(listen: &str) -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    use std::net::ToSocketAddrs;
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{listen} names no address")))?;
    let listener = codex_relay::startup::listen(addr)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs `server` on the current actix runtime as the mock bound at `addr`.
fn launch(server: actix_web::dev::Server, addr: SocketAddr, state: Arc<MockState>) -> MockUpstream {
    let handle = server.handle();
    actix_rt::spawn(server);
    MockUpstream {
        addr,
        state,
        handle,
        scheme: "http",
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // `stop` sends the command when called; its future only waits for completion, so
        // dropping the future still stops the server (a second stop is a no-op).
        drop(self.handle.stop(false));
    }
}

/// Everything the mock records and every knob that changes its answers. All methods take
/// `&self`; the state is shared between the test and the server worker.
#[derive(Default)]
pub struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    scripted: Mutex<VecDeque<Scripted>>,
    event_delay_nanos: AtomicU64,
    streams_started: AtomicUsize,
    streams_finished: AtomicUsize,
    streams_cancelled: AtomicUsize,
    last_cancelled_at: Mutex<Option<Instant>>,
    tokens: Mutex<oauth::TokenRegistry>,
    catalogs: Mutex<std::collections::HashMap<String, Vec<String>>>,
    token_script: Mutex<token_script::TokenScript>,
    login: Mutex<login::LoginScript>,
    accounts: Mutex<accounts::AccountScripts>,
    drift: AtomicBool,
    websocket: websocket::Sockets,
}

impl MockState {
    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Only the `POST /responses` requests, in arrival order.
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests)
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/responses")
            .cloned()
            .collect()
    }

    /// Pause before each SSE event. Zero (the default) writes a whole stream at once.
    pub fn set_event_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.event_delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Like a backend that has changed: normal answers carry an event type
    /// ([`events::UNKNOWN_EVENT`]) and a header ([`events::UNKNOWN_HEADER`]) no relay knows yet.
    pub fn set_drift(&self, on: bool) {
        self.drift.store(on, Ordering::SeqCst);
    }

    fn drift(&self) -> bool {
        self.drift.load(Ordering::SeqCst)
    }

    /// Queues an answer: the next `POST /responses` (or WebSocket turn that generates) that
    /// passes validation gets it instead of the normal answer. Answers are used first in, first
    /// out.
    pub fn push_scripted(&self, answer: Scripted) {
        lock(&self.scripted).push_back(answer);
    }

    /// SSE streams (status 200) the mock has started to answer.
    pub fn streams_started(&self) -> usize {
        self.streams_started.load(Ordering::SeqCst)
    }

    /// SSE streams whose body was sent to its end (a scripted cut counts once it is delivered).
    pub fn streams_finished(&self) -> usize {
        self.streams_finished.load(Ordering::SeqCst)
    }

    /// SSE streams dropped before their end because the caller closed the connection.
    pub fn streams_cancelled(&self) -> usize {
        self.streams_cancelled.load(Ordering::SeqCst)
    }

    /// When the last cancellation was noticed.
    pub fn last_cancelled_at(&self) -> Option<Instant> {
        *lock(&self.last_cancelled_at)
    }

    /// Access tokens minted by the token endpoint (all of them are accepted by `/responses`).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.tokens).access_tokens().to_vec()
    }

    /// Gives the account with this ChatGPT account id its own model catalog (its plan's).
    pub fn set_models_for(&self, account: &str, slugs: &[&str]) {
        let slugs = slugs.iter().map(|s| (*s).to_owned()).collect();
        lock(&self.catalogs).insert(account.to_owned(), slugs);
    }

    fn models_for(&self, account: &str) -> Option<Vec<String>> {
        lock(&self.catalogs).get(account).cloned()
    }

    /// Queues an answer for the next refresh grant (first in, first out).
    pub fn push_token_failure(&self, failure: TokenFailure) {
        lock(&self.token_script).failures.push_back(failure);
    }

    /// Lifetime of access tokens the token endpoint mints from now on (default an hour).
    pub fn set_token_lifetime(&self, secs: i64) {
        lock(&self.token_script).lifetime_secs = secs;
    }

    /// Extra bytes of claims in every JWT the token endpoint mints from now on (default none):
    /// larger tokens need new pages in a relay's store.
    pub fn set_token_padding(&self, bytes: usize) {
        lock(&self.token_script).padding = bytes;
    }

    /// Pause before the token endpoint answers (default none).
    pub fn set_token_delay(&self, delay: Duration) {
        lock(&self.token_script).delay = delay;
    }

    /// Refresh grants received (scripted failures included).
    pub fn refresh_calls(&self) -> usize {
        lock(&self.token_script).refresh_calls
    }

    /// Authorization-code exchanges received.
    pub fn code_exchanges(&self) -> usize {
        lock(&self.token_script).code_exchanges
    }

    /// Whether this refresh token has been spent (a refresh with it would be refused as reused).
    pub fn refresh_token_spent(&self, token: &str) -> bool {
        self.tokens().is_spent(token)
    }

    /// `/responses` answers 401 to this access token from now on.
    pub fn revoke_access_token(&self, token: &str) {
        self.tokens().revoked.insert(token.to_owned());
    }

    /// Changes how logins behave (authorize errors, device-code script, the login account).
    pub fn script_login(&self, change: impl FnOnce(&mut login::LoginScript)) {
        change(&mut lock(&self.login));
    }

    /// Device-token polls received so far.
    pub fn device_polls(&self) -> usize {
        lock(&self.login).polls()
    }

    fn token_delay(&self) -> Duration {
        lock(&self.token_script).delay
    }

    fn token_script(&self) -> MutexGuard<'_, token_script::TokenScript> {
        lock(&self.token_script)
    }

    fn login(&self) -> MutexGuard<'_, login::LoginScript> {
        lock(&self.login)
    }

    fn event_delay(&self) -> Duration {
        Duration::from_nanos(self.event_delay_nanos.load(Ordering::SeqCst))
    }

    fn next_scripted(&self) -> Option<Scripted> {
        lock(&self.scripted).pop_front()
    }

    fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    fn tokens(&self) -> MutexGuard<'_, oauth::TokenRegistry> {
        lock(&self.tokens)
    }

    fn stream_started(&self) {
        self.streams_started.fetch_add(1, Ordering::SeqCst);
    }

    fn stream_finished(&self) {
        self.streams_finished.fetch_add(1, Ordering::SeqCst);
    }

    fn stream_cancelled(&self) {
        // The time first: a test that sees the count must find the time set.
        *lock(&self.last_cancelled_at) = Some(Instant::now());
        self.streams_cancelled.fetch_add(1, Ordering::SeqCst);
    }
}

/// A panicking test must not hide what the mock recorded, so a poisoned lock is still read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The protocol it came over (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    /// The client's address: requests from one address came over one connection.
    pub peer: Option<std::net::SocketAddr>,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names in lower case, in the order received; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    /// The body as sent, after undoing any `Content-Encoding` (gzip, zstd); the header list
    /// still shows which encoding was used.
    pub body: Bytes,
}

impl RecordedRequest {
    fn of(req: &HttpRequest, body: Bytes) -> Self {
        let headers = req.headers().iter().map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        });
        RecordedRequest {
            version: format!("{:?}", req.version()),
            peer: req.peer_addr(),
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            headers: headers.collect(),
            body,
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// An answer a test queues for the next `POST /responses` or WebSocket turn (see
/// [`MockState::push_scripted`]). Over a WebSocket each answer is sent as frames: see
/// `websocket.rs`.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// A plain HTTP answer, e.g. 429 `usage_limit_reached`, 500, 401. `body` is sent as is
    /// (as JSON when it parses as JSON); `headers` are added to the answer.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// 200, then `response.created` and `response.failed` with this error, then the end.
    FailedInStream { code: String, message: String },
    /// 200, the first N events of the normal answer, then the connection is dropped without
    /// a terminal event or the chunked-encoding terminator.
    CutAfterEvents(usize),
    /// 200, then these byte chunks exactly as given (each written as its own chunk, after the
    /// event delay), then a normal end: for proving that bytes pass through unaltered.
    Raw(Vec<Bytes>),
}

/// The single entry point: record first (every request, whatever it is), then route. A
/// WebSocket handshake keeps its payload: it becomes the connection's incoming frames.
async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<MockState>,
) -> HttpResponse {
    let (body, body_error, upgraded) = if body_lasts_until_close(&req) {
        (Bytes::new(), None, Some(payload))
    } else {
        match read_body(&req, payload).await {
            Ok(body) => (body, None, None),
            Err(status) => (Bytes::new(), Some(status), None),
        }
    };
    let recorded = RecordedRequest::of(&req, body);
    state.record(recorded.clone());
    if let Some(status) = body_error {
        return detail(status, "Invalid request body");
    }
    if let Some(payload) = upgraded.filter(|_| websocket::is_upgrade(&recorded)) {
        return websocket::upgrade(state.into_inner(), &req, payload, &recorded);
    }
    let token_delay = state.token_delay();
    if recorded.path == "/oauth/token" && !token_delay.is_zero() {
        actix_rt::time::sleep(token_delay).await;
    }
    route(state.into_inner(), &recorded)
}

fn route(state: Arc<MockState>, req: &RecordedRequest) -> HttpResponse {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/responses") => responses::handle(state, req),
        ("GET", "/models") => match state.standing_status_for(req.header("chatgpt-account-id")) {
            Some(Scripted::Status {
                status,
                body,
                headers,
            }) => responses::scripted_status(status, body, &headers, "req_models"),
            _ => models::handle(&state, req),
        },
        ("POST", "/oauth/token") => oauth::token(&state, req),
        ("GET", "/oauth/authorize") => login::authorize(&state, req),
        ("POST", "/api/accounts/deviceauth/usercode") => login::usercode(&state, req),
        ("POST", "/api/accounts/deviceauth/token") => login::device_token(&state, req),
        _ => detail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// A WebSocket handshake (or CONNECT) has no body: what follows belongs to the upgraded
/// connection, so reading "the body" would wait until the caller hangs up.
fn body_lasts_until_close(req: &HttpRequest) -> bool {
    let websocket = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    websocket || req.method() == actix_web::http::Method::CONNECT
}

/// Reads the whole body, undoing `Content-Encoding` as the backend does.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, StatusCode> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        body.extend_from_slice(&chunk);
    }
    decoded(req, body.freeze())
}

/// `body` with its `Content-Encoding` (gzip or zstd) undone; the mock trusts its callers' sizes.
fn decoded(req: &HttpRequest, body: Bytes) -> Result<Bytes, StatusCode> {
    use std::io::Read;
    let encoding = req.headers().get(actix_web::http::header::CONTENT_ENCODING);
    let decoded = match encoding.and_then(|v| v.to_str().ok()).map(str::trim) {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .map(|_| plain)
        }
        Some("zstd") => zstd::decode_all(&body[..]),
        _ => return Ok(body),
    };
    decoded
        .map(Bytes::from)
        .map_err(|_| StatusCode::BAD_REQUEST)
}

/// The backend's error shape for requests it refuses: `{"detail": "..."}`.
fn detail(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "detail": message }))
}

/// `len` random bytes as lower-case hex, for ids and opaque tokens.
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
