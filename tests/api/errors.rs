//! Bad input gets a clear OpenAI-shaped error with the right status, and nothing reaches the
//! upstream; upstream failures are mapped, never echoed.

use serde_json::json;

use crate::helpers::{body, error_of, spawn_app, spawn_app_with};
use crate::mock_upstream::Scripted;

#[actix_web::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    for raw in ["{", "not json", "[1,2]", "\"a string\"", ""] {
        let mut response = app.responses().send_body(raw).await.unwrap();
        assert_eq!(response.status(), 400, "{raw:?}");
        let error = error_of(&mut response).await;
        assert_eq!(error["type"], "invalid_request_error");
    }
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn wrong_types_name_the_parameter() {
    let app = spawn_app().await;
    let cases = [
        (json!({"input": "hi"}), "model"),
        (json!({"model": 5, "input": "hi"}), "model"),
        (json!({"model": "", "input": "hi"}), "model"),
        (json!({"model": "gpt-5.5", "input": 5}), "input"),
        (
            json!({"model": "gpt-5.5", "input": "hi", "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "gpt-5.5", "input": "hi", "instructions": ["x"]}),
            "instructions",
        ),
        (
            json!({"model": "gpt-5.5", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
    ];
    for (request, param) in cases {
        let mut response = app.responses().send_json(&request).await.unwrap();
        assert_eq!(response.status(), 400, "{request}");
        let error = error_of(&mut response).await;
        assert_eq!(error["param"], param, "{request}");
    }
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn an_oversize_body_is_a_413() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 4096).await;
    let big = body("gpt-5.5", &"x".repeat(10_000), true);
    let mut response = app.responses().send_json(&big).await.unwrap();
    assert_eq!(response.status(), 413);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "request_too_large");
    // The connection and the relay stay usable.
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    app.stop().await;
}

#[actix_web::test]
async fn an_unknown_model_is_a_404() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .send_json(&body("gpt-9-imaginary", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn a_websocket_of_an_unknown_version_gets_426_at_once() {
    let app = spawn_app().await;
    let mut response = app
        .get("/v1/responses")
        .insert_header(("upgrade", "websocket"))
        .insert_header(("connection", "upgrade"))
        .insert_header(("openai-beta", "responses_websockets=2030-01-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "websocket_not_supported");
    app.stop().await;
}

#[actix_web::test]
async fn upstream_errors_are_mapped_without_their_bodies() {
    let secret_body = json!({"detail": "internal trace: db=secret-upstream-internals"}).to_string();
    let resets_at = chrono::Utc::now().timestamp() + 90;
    let cases = [
        (500, secret_body.clone(), 502, "upstream_error"),
        (503, secret_body.clone(), 502, "upstream_error"),
        (429, json!({"error": {"type": "usage_limit_reached", "plan_type": "plus", "resets_at": resets_at}}).to_string(), 429, "usage_limit_reached"),
        (429, json!({"error": {"code": "rate_limit_exceeded", "resets_in_seconds": 85}}).to_string(), 429, "rate_limit_exceeded"),
    ];
    // One app per case: a 429 cools the app's only account (see tests/api/pool_*.rs).
    for (status, body_text, expected, code) in cases {
        let app = spawn_app().await;
        app.mock.state.push_scripted(Scripted::Status {
            status,
            body: body_text,
            headers: vec![],
        });
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", true))
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "upstream {status}");
        if expected == 429 {
            let retry: u64 = response
                .headers()
                .get("retry-after")
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((80..=90).contains(&retry), "retry-after {retry}");
        }
        let error = error_of(&mut response).await;
        assert_eq!(error["code"], code);
        assert!(!error.to_string().contains("secret-upstream-internals"));
        app.stop().await;
    }
}

#[actix_web::test]
async fn a_token_rejected_again_after_its_refresh_takes_the_account_out_of_rotation() {
    let app = spawn_app().await;
    // The first 401 is answered by one refresh and one retry; the retry's 401 is final.
    for _ in 0..2 {
        app.mock.state.push_scripted(Scripted::Status {
            status: 401,
            body: "{\"detail\":\"Unauthorized\"}".into(),
            headers: vec![],
        });
    }
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    error_of(&mut response).await;
    assert_eq!(app.mock.state.refresh_calls(), 1);
    let unusable = crate::helpers::eventually(5, || async {
        let mut r = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", false))
            .await
            .unwrap();
        let _ = r.body().await;
        r.status() == 503
    })
    .await;
    assert!(unusable, "the account kept serving after a 401");
    app.stop().await;
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_in_the_openai_shape() {
    let app = spawn_app().await;
    let mut response = app.get("/v1/chat/completions").send().await.unwrap();
    assert_eq!(response.status(), 404);
    error_of(&mut response).await;
    let mut response = crate::helpers::client()
        .get(app.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    error_of(&mut response).await;
    app.stop().await;
}
