//! Headers across the relay: the Codex headers go upstream with the account's credentials (never
//! the client's), and the upstream's turn state, rate limits, model and request id come back.

use secrecy::ExposeSecret;

use crate::helpers::{body, read_all, spawn_app};

#[actix_web::test]
async fn codex_headers_go_upstream_with_the_accounts_credentials() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .insert_header(("originator", "codex_exec"))
        .insert_header(("user-agent", "codex_exec/0.171.0 (Linux; x86_64) xterm"))
        .insert_header(("session-id", "sess-1"))
        .insert_header(("session_id", "sess-legacy"))
        .insert_header(("thread-id", "thread-1"))
        .insert_header(("x-codex-turn-state", "ts-1"))
        .insert_header(("x-codex-turn-metadata", "{\"turn_id\":\"t\"}"))
        .insert_header(("x-openai-subagent", "review"))
        .insert_header(("x-client-request-id", "client-req-1"))
        .insert_header(("x-stainless-retry-count", "0"))
        .insert_header(("cookie", "session=secret"))
        .insert_header(("x-openai-fedramp", "true"))
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    read_all(&mut response).await;
    let seen = app.mock.state.responses_requests().pop().unwrap();
    let token = app.auth_json["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(seen.header("chatgpt-account-id"), Some("acct-test-1"));
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    for (name, value) in [
        ("originator", "codex_exec"),
        ("user-agent", "codex_exec/0.171.0 (Linux; x86_64) xterm"),
        ("session-id", "sess-1"),
        ("session_id", "sess-legacy"),
        ("thread-id", "thread-1"),
        ("x-codex-turn-state", "ts-1"),
        ("x-codex-turn-metadata", "{\"turn_id\":\"t\"}"),
        ("x-openai-subagent", "review"),
        ("x-client-request-id", "client-req-1"),
    ] {
        assert_eq!(seen.header(name), Some(value), "{name}");
    }
    for absent in ["x-stainless-retry-count", "cookie", "x-openai-fedramp"] {
        assert_eq!(seen.header(absent), None, "{absent} crossed the relay");
    }
    let stored = app
        .store
        .load_credentials(&app.account_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.access_token.expose_secret(), token);
    app.stop().await;
}

#[actix_web::test]
async fn an_sdk_client_is_presented_with_the_relays_codex_identity() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .insert_header(("user-agent", "OpenAI/Python 3.57.0"))
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    response.body().await.unwrap();
    let seen = app.mock.state.responses_requests().pop().unwrap();
    assert_eq!(seen.header("originator"), Some("codex_cli_rs"));
    assert!(seen
        .header("user-agent")
        .unwrap()
        .starts_with("codex_cli_rs/"));
    app.stop().await;
}

#[actix_web::test]
async fn turn_state_model_and_request_id_come_back() {
    let app = spawn_app().await;
    for stream in [true, false] {
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", stream))
            .await
            .unwrap();
        let headers = response.headers().clone();
        response.body().limit(1 << 20).await.unwrap();
        // The backend's rate-limit headers describe one pool account: the caller's limits are
        // shown instead (tests/api/codex_limits.rs).
        for name in ["x-codex-turn-state", "openai-model", "x-models-etag"] {
            assert!(
                headers.contains_key(name),
                "{name} missing (stream {stream})"
            );
        }
        let upstream_id = headers.get("x-request-id").unwrap().to_str().unwrap();
        assert!(upstream_id.starts_with("req_"), "{upstream_id}");
        let relay_id = headers.get("x-relay-request-id").unwrap().to_str().unwrap();
        assert!(
            app.logs().contains(relay_id),
            "the relay's id names the request in its logs"
        );
        assert!(
            app.logs().contains(upstream_id),
            "the upstream's id is logged beside it"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_sane_client_request_id_is_kept() {
    let app = spawn_app().await;
    let response = app
        .get("/v1/models")
        .insert_header(("x-request-id", "my-trace-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "my-trace-123"
    );
    let response = app
        .get("/v1/models")
        .insert_header(("x-request-id", "bad id with spaces"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        response.headers().get("x-request-id").unwrap(),
        "bad id with spaces"
    );
    app.stop().await;
}
