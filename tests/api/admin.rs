//! The admin plane: tokens and scopes, the account views, the account lifecycle (import,
//! disable, enable, drain, delete), probes, and its refusal to open beyond loopback unprotected.

use std::sync::Arc;
use std::time::Duration;

use codex_relay::obs::{build_logger, LogSink};
use codex_relay::settings::{LogLevel, Settings};
use codex_relay::startup::{Application, StartupError};
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::{MasterKey, Store};
use serde_json::{json, Value};

use crate::helpers::{admin_call, body, error_of, eventually, read_all, spawn_app, TestApp};
use crate::mock_upstream::fake_auth_json;

async fn json_of(response: &mut awc::ClientResponse) -> Value {
    response.json().limit(1 << 20).await.unwrap()
}

async fn accounts(app: &TestApp, token: &str) -> Vec<Value> {
    let mut response = app
        .admin("GET", "/admin/v1/accounts", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list = json_of(&mut response).await;
    assert_eq!(list["object"], "list");
    list["data"].as_array().unwrap().clone()
}

async fn post(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    admin_call(app, "POST", path, token, None).await
}

#[actix_web::test]
async fn admin_calls_need_a_token_and_changes_need_the_write_scope() {
    let app = spawn_app().await;
    let read = app.admin_token(AdminScope::Read).await;
    let write = app.admin_token(AdminScope::Write).await;
    let path = format!("/admin/v1/accounts/{}/disable", app.account_id);

    let mut response = app
        .admin("GET", "/admin/v1/accounts", "")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(error_of(&mut response).await["message"]
        .as_str()
        .unwrap()
        .contains("admin-token create"));
    let mut response = app
        .admin("GET", "/admin/v1/accounts", "sk-relay-admin-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(&mut response).await["code"], "invalid_admin_token");
    // A data-plane key is not an admin token.
    let response = app
        .admin("GET", "/admin/v1/accounts", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert_eq!(accounts(&app, &read).await.len(), 1);
    let mut response = app.admin("POST", &path, &read).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(error_of(&mut response).await["code"], "insufficient_scope");
    assert_eq!(accounts(&app, &read).await[0]["state"], "active");

    let (status, view) = post(&app, &path, &write).await;
    assert_eq!(status, 200);
    assert_eq!(view["state"], "disabled");

    let logs = app.logs();
    assert!(!logs.contains(&read) && !logs.contains(&write));
    assert!(logs.contains("admin_token_id"));
    app.stop().await;
}

#[actix_web::test]
async fn the_account_view_shows_what_operators_need_and_no_secret() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Read).await;
    let mut response = app
        .admin(
            "GET",
            &format!("/admin/v1/accounts/{}", app.account_id),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["id"], app.account_id.as_str());
    assert_eq!(view["object"], "relay.account");
    assert_eq!(view["state"], "active");
    assert_eq!(view["admin_state"], "active");
    assert_eq!(view["plan"], "plus");
    assert_eq!(view["in_flight"], 0);
    assert!(view["token_expires_at"].as_str().unwrap().ends_with('Z'));
    let email = view["email"].as_str().unwrap();
    assert!(email.contains('*') && !email.contains("dev@"), "{email}");
    for secret in ["id_token", "access_token", "refresh_token"] {
        let value = app.auth_json["tokens"][secret].as_str().unwrap();
        assert!(!text.contains(value), "the view leaks the {secret}");
    }
    // By the ChatGPT account id too.
    let mut response = app
        .admin("GET", "/admin/v1/accounts/acct-test-1", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(&mut response).await["id"], app.account_id.as_str());
    app.stop().await;
}

#[actix_web::test]
async fn a_disabled_account_serves_nothing_until_it_is_enabled_again() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let (status, _) = post(
        &app,
        &format!("/admin/v1/accounts/{}/disable", app.account_id),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(&mut response).await["code"], "no_usable_account");

    let (status, view) = post(
        &app,
        &format!("/admin/v1/accounts/{}/enable", app.account_id),
        &token,
    )
    .await;
    assert_eq!((status, view["state"].as_str()), (200, Some("active")));
    let response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[actix_web::test]
async fn a_draining_account_finishes_its_calls_and_takes_no_new_ones() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut stream = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let (status, view) = post(
        &app,
        &format!("/admin/v1/accounts/{}/drain", app.account_id),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["state"], "draining");
    assert_eq!(view["in_flight"], 1);
    let refused = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);

    let events = crate::helpers::sse_events(&read_all(&mut stream).await);
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let drained = eventually(5, || async {
        accounts(&app, &token).await[0]["in_flight"] == 0
    })
    .await;
    assert!(drained, "the drained call was never reported");
    app.stop().await;
}

#[actix_web::test]
async fn an_auth_json_imported_over_http_is_created_then_updated() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let exp = chrono::Utc::now().timestamp() + 3600;
    let auth = fake_auth_json("acct-admin-2", "ops@example.com", "pro", exp);
    let mut response = app
        .admin("POST", "/admin/v1/accounts?label=second", &token)
        .send_json(&auth)
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = json_of(&mut response).await;
    assert_eq!(created["label"], "second");
    assert_eq!(created["plan"], "pro");
    assert_eq!(created["state"], "active", "the router follows at once");

    let mut response = app
        .admin("POST", "/admin/v1/accounts", &token)
        .send_json(&auth)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&mut response).await["id"], created["id"]);
    assert_eq!(accounts(&app, &token).await.len(), 2);

    let api_key_only = json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-proj-secret-marker"});
    for bad in [
        api_key_only,
        json!({"tokens": {"id_token": "x"}}),
        json!([1, 2]),
    ] {
        let mut response = app
            .admin("POST", "/admin/v1/accounts", &token)
            .send_json(&bad)
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let error = error_of(&mut response).await;
        assert!(!error.to_string().contains("sk-proj-secret-marker"));
    }
    let mut response = app
        .admin("POST", "/admin/v1/accounts?label=", &token)
        .send_json(&auth)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_of(&mut response).await["param"], "label");
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let response = app
        .admin("POST", "/admin/v1/accounts", &token)
        .send_body(huge)
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(accounts(&app, &token).await.len(), 2, "nothing was stored");
    app.stop().await;
}

#[actix_web::test]
async fn a_deleted_account_is_gone_from_the_store_and_the_pool() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let path = format!("/admin/v1/accounts/{}", app.account_id);
    let mut response = app.admin("DELETE", &path, &token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&mut response).await["deleted"], true);
    let mut response = app.admin("GET", &path, &token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_of(&mut response).await["code"], "not_found");
    let response = app.admin("DELETE", &path, &token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(app.store.list_accounts().unwrap().is_empty());
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        error_of(&mut response).await["code"],
        "no_accounts_configured"
    );
    app.stop().await;
}

#[actix_web::test]
async fn unknown_admin_paths_methods_and_ids_get_clear_errors() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let cases = [
        ("GET", "/admin/v1/nope".to_owned(), 404, "unknown_url"),
        (
            "PUT",
            "/admin/v1/accounts".to_owned(),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/admin/v1/accounts/no%20such/enable".to_owned(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/admin/v1/accounts/missing/enable".to_owned(),
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/admin/v1/accounts/{}", "a".repeat(200)),
            400,
            "invalid_value",
        ),
    ];
    for (method, path, status, code) in cases {
        let mut response = app.admin(method, &path, &token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            error_of(&mut response).await["code"],
            code,
            "{method} {path}"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn probes_answer_without_a_token() {
    let app = spawn_app().await;
    let mut health = app.admin("GET", "/healthz", "").send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(json_of(&mut health).await["status"], "ok");
    let mut ready = app.admin("GET", "/readyz", "").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(json_of(&mut ready).await["pool"]["usable_accounts"], 1);

    let token = app.admin_token(AdminScope::Write).await;
    post(
        &app,
        &format!("/admin/v1/accounts/{}/disable", app.account_id),
        &token,
    )
    .await;
    let mut ready = app.admin("GET", "/readyz", "").send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(json_of(&mut ready).await["status"], "not_ready");
    app.stop().await;
}

#[actix_web::test]
async fn a_revoked_admin_token_stops_working() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Read).await;
    app.store.revoke_admin_token("tests").unwrap();
    let refused = eventually(5, || async {
        let response = app.admin("GET", "/admin/v1/accounts", &token).send().await;
        response.is_ok_and(|r| r.status() == 401)
    })
    .await;
    assert!(refused);
    app.stop().await;
}

async fn build_with_admin_on(listen: &str, with_token: bool) -> Result<Application, StartupError> {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults().unwrap();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.admin.listen = listen.parse().unwrap();
    settings.store.path = dir.path().join("relay.db");
    let store = Store::open(&settings.store.path, 2, MasterKey::generate()).unwrap();
    if with_token {
        store.create_admin_token("ops", AdminScope::Write).unwrap();
    }
    let (log, _) = build_logger(LogSink::Buffer(Arc::default()), LogLevel::Info);
    Application::build(settings, store, log).await
}

#[actix_web::test]
async fn the_admin_plane_opens_beyond_loopback_only_with_a_token() {
    let refused = build_with_admin_on("0.0.0.0:0", false).await;
    let Err(error) = refused else {
        panic!("an unprotected admin plane on 0.0.0.0 was started");
    };
    assert!(matches!(error, StartupError::AdminUnprotected { .. }));
    assert!(error.to_string().contains("admin-token create"));
    for (listen, with_token) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        let app = build_with_admin_on(listen, with_token).await.unwrap();
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        handle.stop(false).await;
        running.await.unwrap().unwrap();
    }
}
