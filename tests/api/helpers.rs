//! `spawn_app()`: a mock upstream, a store in a temp dir with one imported account and one API
//! key, and the relay built by `Application::build` on port 0, logging into a buffer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use codex_relay::oauth::auth_json;
use codex_relay::obs::{build_logger, LogSink};
use codex_relay::settings::{LogLevel, Settings};
use codex_relay::startup::{AppHandle, Application};
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::{keys::reveal, MasterKey, Store};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::mock_upstream::{fake_auth_json, MockUpstream};

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub key: String,
    pub mock: MockUpstream,
    pub store: Store,
    pub account_id: String,
    /// The auth.json the account was imported from (its tokens are secrets the tests look for).
    pub auth_json: Value,
    /// The settings the relay was started with (a restart reuses them).
    pub settings: Settings,
    logs: Arc<Mutex<Vec<u8>>>,
    pub admin_addr: std::net::SocketAddr,
    /// Keys the test's `seed` created before the relay started, in the order it returned them.
    pub seeded: Vec<String>,
    handle: AppHandle,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `customize` before the relay starts.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_seeded(customize, |_| Vec::new()).await
}

/// Like [`spawn_app_with`], with the account's access token expiring in `expires_in` seconds
/// (negative: already expired).
pub async fn spawn_app_expiring(expires_in: i64, customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(expires_in, customize, |_| Vec::new()).await
}

/// Like [`spawn_app_with`], and `seed` writes to the store before the relay starts (so what it
/// creates is loaded at startup); the keys it returns are in [`TestApp::seeded`].
pub async fn spawn_app_seeded(
    customize: impl FnOnce(&mut Settings),
    seed: impl FnOnce(&Store) -> Vec<String>,
) -> TestApp {
    spawn(3600, customize, seed).await
}

/// Like [`spawn_app`], with the mock served over HTTPS (HTTP/2, as the Codex backend) under a
/// self-signed certificate; `trusted`: the relay's `upstream.ca_file` names it.
pub async fn spawn_app_over_tls(trusted: bool) -> TestApp {
    spawn_on(Upstream::Tls { trusted }, 3600, |_| {}, |_| Vec::new()).await
}

/// How the mock is served.
enum Upstream {
    Plain,
    Tls { trusted: bool },
}

async fn spawn(
    expires_in: i64,
    customize: impl FnOnce(&mut Settings),
    seed: impl FnOnce(&Store) -> Vec<String>,
) -> TestApp {
    spawn_on(Upstream::Plain, expires_in, customize, seed).await
}

async fn spawn_on(
    upstream: Upstream,
    expires_in: i64,
    customize: impl FnOnce(&mut Settings),
    seed: impl FnOnce(&Store) -> Vec<String>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("mock-cert.pem");
    let mock = match upstream {
        Upstream::Plain => MockUpstream::start("127.0.0.1:0").await,
        Upstream::Tls { .. } => MockUpstream::start_tls("127.0.0.1:0", &cert).await,
    }
    .expect("mock starts");
    let mut settings = Settings::defaults().expect("defaults load");
    if let Upstream::Tls { trusted: true } = upstream {
        settings.upstream.ca_file = Some(cert);
    }
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.server.workers = 1;
    settings.admin.listen = "127.0.0.1:0".parse().expect("addr");
    settings.store.path = dir.path().join("relay.db");
    settings.store.sync_interval_ms = 100;
    settings.upstream.base_url = mock.url().parse().expect("url");
    settings.oauth.issuer = mock.url().parse().expect("url");
    customize(&mut settings);

    let store = Store::open(&settings.store.path, 4, master_key(dir.path())).expect("store opens");
    let exp = chrono::Utc::now().timestamp() + expires_in;
    let auth = fake_auth_json("acct-test-1", "dev@example.com", "plus", exp);
    let account = auth_json::parse(&auth.to_string()).expect("auth.json parses");
    let (account_id, _) = store.import_account(&account).expect("import");
    let key = reveal(&store.create_key("tests").expect("key")).to_owned();
    let seeded = seed(&store);

    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr, admin_addr, handle) = start_relay(&settings, &store, &logs).await;
    TestApp {
        addr,
        admin_addr,
        seeded,
        key,
        mock,
        store,
        account_id,
        auth_json: auth,
        settings,
        logs,
        handle,
        _dir: dir,
    }
}

/// A new master key, also written where the binary looks for it (`master.key` beside the store),
/// so that the real CLI can open a test's store.
fn master_key(dir: &std::path::Path) -> MasterKey {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    std::fs::write(dir.join("master.key"), text).expect("master key file");
    MasterKey::from_bytes(&bytes).expect("a 32-byte key")
}

/// Builds and runs the relay on `store`; returns the data and admin addresses and the handle.
async fn start_relay(
    settings: &Settings,
    store: &Store,
    logs: &Arc<Mutex<Vec<u8>>>,
) -> (std::net::SocketAddr, std::net::SocketAddr, AppHandle) {
    let (log, _) = build_logger(LogSink::Buffer(Arc::clone(logs)), LogLevel::Debug);
    let app = Application::build(settings.clone(), store.clone(), log)
        .await
        .expect("relay starts");
    let addr = app.addr();
    let admin_addr = app.admin_addr();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    (addr, admin_addr, handle)
}

impl TestApp {
    /// A POST to `/v1/responses` with `key`.
    pub fn responses_as(&self, key: &str) -> awc::ClientRequest {
        client()
            .post(self.url("/v1/responses"))
            .bearer_auth(key)
            .insert_header(("content-type", "application/json"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A POST to `/v1/responses` with the test key.
    pub fn responses(&self) -> awc::ClientRequest {
        client()
            .post(self.url("/v1/responses"))
            .bearer_auth(&self.key)
            .insert_header(("content-type", "application/json"))
    }

    /// Posts a streaming request, checks it is answered as a stream, and returns its events.
    pub async fn stream_events(&self, request: &Value) -> Vec<Value> {
        let mut response = self.responses().send_json(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers().get("content-type").unwrap();
        assert_eq!(content_type, "text/event-stream");
        sse_events(&read_all(&mut response).await)
    }

    /// The body of the last `POST /responses` the upstream received.
    pub fn last_upstream_body(&self) -> Value {
        let requests = self.mock.state.responses_requests();
        requests.last().and_then(|r| r.json()).unwrap()
    }

    /// A request to the admin plane with `token` (none when empty).
    pub fn admin(&self, method: &str, path: &str, token: &str) -> awc::ClientRequest {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = client().request(method, format!("http://{}{path}", self.admin_addr));
        if token.is_empty() {
            request
        } else {
            request.bearer_auth(token)
        }
    }

    /// Creates an admin token in the store; the server knows it after its next sync.
    pub async fn admin_token(&self, scope: AdminScope) -> String {
        let created = self.store.create_admin_token("tests", scope).unwrap();
        let token = created.token.expose_secret().to_owned();
        let (admin, probe) = (self.admin_addr, token.clone());
        let known = eventually(5, || {
            let probe = probe.clone();
            async move {
                let url = format!("http://{admin}/admin/v1/accounts");
                let response = client().get(url).bearer_auth(probe).send().await;
                // 429: the polls themselves spent the address's budget of failures.
                response.is_ok_and(|r| !matches!(r.status().as_u16(), 401 | 429))
            }
        })
        .await;
        assert!(known, "the relay never learned the new admin token");
        token
    }

    pub fn get(&self, path: &str) -> awc::ClientRequest {
        client().get(self.url(path)).bearer_auth(&self.key)
    }

    /// The secrets the test relay was started with: the account's three OAuth tokens, the test
    /// API key, and the login's email.
    pub fn seeded_secrets(&self) -> Vec<String> {
        let tokens = &self.auth_json["tokens"];
        let mut secrets: Vec<String> = ["id_token", "access_token", "refresh_token"]
            .iter()
            .map(|name| tokens[*name].as_str().unwrap().to_owned())
            .collect();
        secrets.push(self.key.clone());
        secrets.push("dev@example.com".to_owned());
        secrets
    }

    /// Everything the relay has logged so far.
    pub fn logs(&self) -> String {
        let bytes = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Stops the relay and starts a new one on the same store file and mock (a restart).
    /// The old relay's actors are stopped first (not merely its servers), so that it cannot
    /// probe, refresh or save pool state beside its successor.
    pub async fn restart(mut self) -> TestApp {
        self.handle.stop(false).await;
        let old = self.handle.clone();
        assert!(
            eventually(5, || async { old.actors_stopped() }).await,
            "the old relay's actors kept running"
        );
        let (addr, admin_addr, handle) = start_relay(&self.settings, &self.store, &self.logs).await;
        self.addr = addr;
        self.admin_addr = admin_addr;
        self.handle = handle;
        self
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
        self.mock.stop().await;
    }

    /// Stops the relay as SIGTERM does: the calls in flight get `server.shutdown_grace_secs`.
    pub async fn stop_gracefully(self) {
        self.handle.stop(true).await;
        self.mock.stop().await;
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// A Responses request body with one user message.
pub fn body(model: &str, text: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": text}]}],
        "stream": stream,
        "store": false,
    })
}

/// Reads a whole streamed body.
pub async fn read_all(response: &mut awc::ClientResponse) -> Bytes {
    let mut all = bytes::BytesMut::new();
    while let Some(chunk) = response.next().await {
        all.extend_from_slice(&chunk.expect("chunk"));
    }
    all.freeze()
}

/// The JSON payloads of an SSE body, in order.
pub fn sse_events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).expect("utf-8");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            serde_json::from_str(data).expect("event JSON")
        })
        .collect()
}

/// The error object of an OpenAI-shaped error body, checking the shape on the way.
pub async fn error_of(response: &mut awc::ClientResponse) -> Value {
    let body: Value = response
        .json()
        .limit(1 << 20)
        .await
        .expect("JSON error body");
    let error = body["error"].as_object().expect("error object");
    for field in ["message", "type", "param", "code"] {
        assert!(error.contains_key(field), "error lacks {field}: {body}");
    }
    assert!(error["message"].is_string(), "{body}");
    body["error"].clone()
}

/// The seconds of a response's `Retry-After` (which must be there).
pub fn retry_after_secs(response: &awc::ClientResponse) -> u64 {
    let value = response.headers().get("retry-after").expect("Retry-After");
    value.to_str().unwrap().parse().unwrap()
}

/// Polls `check` every 50 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// One admin call: its status and JSON body. An error body must have the OpenAI shape.
pub async fn admin_call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = app.admin(method, path, token);
    let mut response = match body {
        Some(body) => request.send_json(&body).await.unwrap(),
        None => request.send().await.unwrap(),
    };
    let status = response.status().as_u16();
    let value: Value = response.json().limit(1 << 20).await.unwrap();
    if status >= 400 {
        for field in ["message", "type", "param", "code"] {
            assert!(
                value["error"].get(field).is_some(),
                "not OpenAI-shaped: {value}"
            );
        }
    }
    (status, value)
}
