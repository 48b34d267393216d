//! The upstream over HTTPS, as the Codex backend is reached: with the mock's certificate named by
//! `upstream.ca_file` the relay streams over HTTP/2; without it, the certificate is refused, the
//! client gets a clear error (not a hang) and the log says why. A burst on a cold relay shares
//! one connection instead of opening one per request.

use codex_relay::obs::{build_logger, LogSink};
use codex_relay::settings::{LogLevel, Settings};
use codex_relay::startup::{Application, StartupError};
use codex_relay::store::{MasterKey, Store};

use crate::helpers::{error_of, spawn_app_over_tls};

#[actix_web::test]
async fn a_trusted_https_upstream_is_reached_over_http2() {
    let app = spawn_app_over_tls(true).await;
    let events = app
        .stream_events(&serde_json::json!({"model": "gpt-5.5", "input": "hi", "stream": true}))
        .await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let requests = app.mock.state.responses_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].version, "HTTP/2.0");
    // The account's bearer went over the encrypted connection as it would over plain HTTP/1.1.
    assert!(requests[0]
        .header("authorization")
        .is_some_and(|v| v.starts_with("Bearer ")));
    app.stop().await;
}

#[actix_web::test]
async fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let app = spawn_app_over_tls(false).await;
    let mut response = app
        .responses()
        .send_json(&serde_json::json!({"model": "gpt-5.5", "input": "hi", "stream": true}))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "upstream_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{error}"
    );
    assert!(app.mock.state.responses_requests().is_empty());
    // The operator's log says why, so that naming the CA in `upstream.ca_file` is the next step.
    assert!(
        app.logs().contains("invalid peer certificate"),
        "{}",
        app.logs()
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_burst_on_a_cold_relay_shares_one_upstream_connection() {
    let app = spawn_app_over_tls(true).await;
    let request = serde_json::json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    let burst = (0..24).map(|_| app.stream_events(&request));
    for events in futures_util::future::join_all(burst).await {
        assert_eq!(events.last().unwrap()["type"], "response.completed");
    }
    let requests = app.mock.state.responses_requests();
    assert_eq!(requests.len(), 24);
    let connections: std::collections::HashSet<_> = requests.iter().map(|r| r.peer).collect();
    // The test app runs one worker: the first request connects, the other 23 wait and share it.
    assert_eq!(connections.len(), 1, "{connections:?}");
    app.stop().await;
}

/// The CA file is read where the clients are built, at startup: one that is missing, or holds no
/// certificate, stops the relay before it listens, naming the setting and the file.
#[actix_web::test]
async fn an_unusable_ca_file_stops_startup_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (n, ca_file) in [dir.path().join("missing-ca.pem"), empty]
        .into_iter()
        .enumerate()
    {
        let mut settings = Settings::defaults().unwrap();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin.listen = "127.0.0.1:0".parse().unwrap();
        settings.store.path = dir.path().join(format!("relay-{n}.db"));
        settings.upstream.ca_file = Some(ca_file.clone());
        let store = Store::open(&settings.store.path, 2, MasterKey::generate()).unwrap();
        let (log, _) = build_logger(LogSink::Buffer(Default::default()), LogLevel::Info);
        let Err(error) = Application::build(settings, store, log).await else {
            panic!("a relay started with an unusable upstream.ca_file");
        };
        assert!(matches!(error, StartupError::CaFile(_)), "{error}");
        let message = error.to_string();
        assert!(message.contains("upstream.ca_file"), "{message}");
        let name = ca_file.file_name().unwrap().to_str().unwrap();
        assert!(message.contains(name), "{message}");
    }
}
