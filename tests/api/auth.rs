//! Every `/v1` route requires an API key; keys created or revoked in the store take effect while
//! the relay runs.

use codex_relay::store::keys::reveal;

use crate::helpers::{body, client, error_of, eventually, spawn_app};

#[actix_web::test]
async fn a_request_without_a_key_is_refused_with_401() {
    let app = spawn_app().await;
    for path in ["/v1/models", "/v1/models/gpt-5.5", "/v1/anything"] {
        let mut response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let error = error_of(&mut response).await;
        assert_eq!(error["type"], "invalid_request_error");
    }
    let mut response = client()
        .post(app.url("/v1/responses"))
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    error_of(&mut response).await;
    assert!(
        app.mock.state.responses_requests().is_empty(),
        "nothing reached the upstream"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_wrong_or_malformed_key_is_refused_with_401() {
    let app = spawn_app().await;
    for header in [
        "Bearer sk-relay-not-a-real-key",
        "Basic abc",
        "Bearer ",
        "sk-relay-nobearer",
    ] {
        let mut response = client()
            .get(app.url("/v1/models"))
            .insert_header(("authorization", header))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
        error_of(&mut response).await;
    }
    let mut response = client()
        .get(app.url("/v1/models"))
        .bearer_auth("sk-relay-not-a-real-key")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(&mut response).await["code"], "invalid_api_key");
    app.stop().await;
}

/// The status `GET /v1/models` answers with for `key`.
async fn models_status(app: &crate::helpers::TestApp, key: &str) -> u16 {
    let response = client().get(app.url("/v1/models")).bearer_auth(key).send();
    response.await.unwrap().status().as_u16()
}

#[actix_web::test]
async fn keys_created_and_revoked_while_running_take_effect() {
    let app = spawn_app().await;
    let created = app.store.create_key("late").unwrap();
    let key = reveal(&created).to_owned();
    let works = eventually(5, || async { models_status(&app, &key).await == 200 }).await;
    assert!(works, "a new key was not picked up");
    app.store.revoke_key("late").unwrap();
    let refused = eventually(5, || async { models_status(&app, &key).await == 401 }).await;
    assert!(refused, "a revoked key kept working");
    app.stop().await;
}

#[actix_web::test]
async fn healthz_answers_without_a_key() {
    let app = spawn_app().await;
    let mut response = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["status"], "ok");
    assert_eq!(value["usable_accounts"], 1);
    app.stop().await;
}
