//! The Responses API's endpoints on stored responses answer a clear OpenAI-shaped 404 (the
//! backend stores nothing), and input parts the backend cannot resolve (`file_id`) are refused
//! before any account is leased; inline images pass.

use codex_relay::store::Operation;
use serde_json::{json, Value};

use crate::helpers::{client, error_of, read_all, spawn_app, TestApp};

async fn call(app: &TestApp, method: &str, path: &str) -> awc::ClientResponse {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    client()
        .request(method, app.url(path))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn stored_response_endpoints_say_the_relay_stores_no_responses() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/v1/responses/resp_123"),
        ("GET", "/v1/responses/resp_123/input_items"),
        ("POST", "/v1/responses/resp_123/cancel"),
        ("DELETE", "/v1/responses/resp_123"),
    ] {
        let mut response = call(&app, method, path).await;
        assert_eq!(response.status(), 404, "{method} {path}");
        let error = error_of(&mut response).await;
        assert_eq!(error["type"], "invalid_request_error", "{method} {path}");
        assert_eq!(error["code"], "response_not_found", "{method} {path}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("'resp_123'"), "{message}");
        assert!(
            message.contains("codex-relay does not store responses"),
            "{message}"
        );
    }
    // Other methods on those paths are still a 405, and a key is still required.
    assert_eq!(
        call(&app, "PUT", "/v1/responses/resp_1").await.status(),
        405
    );
    let anonymous = client()
        .get(app.url("/v1/responses/resp_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

fn with_image(part: Value) -> Value {
    json!({
        "model": "gpt-5.5",
        "stream": false,
        "input": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "what is this?"}, part]},
        ],
    })
}

#[actix_web::test]
async fn an_uploaded_file_reference_is_refused_before_any_account_is_used() {
    let app = spawn_app().await;
    for part in [
        json!({"type": "input_image", "file_id": "file-abc", "detail": "auto"}),
        json!({"type": "input_file", "file_id": "file-abc"}),
    ] {
        let mut response = app.responses().send_json(&with_image(part)).await.unwrap();
        assert_eq!(response.status(), 400);
        let error = error_of(&mut response).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "input[1].content[1].file_id");
        assert_eq!(error["code"], "unsupported_file_reference");
    }
    // No account was leased: the upstream saw nothing, and no usage was recorded.
    assert!(app.mock.state.responses_requests().is_empty());
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let totals = app
        .store
        .run(Operation::Read, move |s| {
            s.usage_totals(&today, &today[..7])
        })
        .await
        .unwrap();
    assert!(
        totals.iter().all(|t| t.day_tokens == 0),
        "no usage recorded"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_inline_image_passes() {
    let app = spawn_app().await;
    let image = json!({"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"});
    let mut response = app.responses().send_json(&with_image(image)).await.unwrap();
    assert_eq!(response.status(), 200);
    read_all(&mut response).await;
    let sent = app.last_upstream_body();
    assert_eq!(
        sent["input"][1]["content"][1]["image_url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    app.stop().await;
}
