//! The onboarding and refresh side of the admin plane: refresh now (success, a dead login, a
//! transient failure), device-code and paste logins driven over HTTP, their validation and
//! scopes, and no token or PKCE verifier in any answer or log line.

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::helpers::{admin_call as send, error_of, eventually, spawn_app_with, TestApp};
use crate::mock_upstream::{DeviceOutcome, TokenFailure};

async fn app() -> TestApp {
    spawn_app_with(|s| s.oauth.device_min_interval_ms = 20).await
}

/// Polls a login session until it is no longer pending (bounded), and returns it.
async fn settled(app: &TestApp, path: &str, token: &str) -> Value {
    for _ in 0..200 {
        let (status, session) = send(app, "GET", path, token, None).await;
        assert_eq!(status, 200, "{session}");
        if session["status"] != "pending" {
            return session;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the login never finished");
}

/// Tokens, refresh tokens, codes and verifiers the relay has handled: none may leave it.
fn secrets(app: &TestApp) -> Vec<String> {
    let mut all = app.mock.state.issued_tokens();
    for part in ["access_token", "refresh_token", "id_token"] {
        all.push(app.auth_json["tokens"][part].as_str().unwrap().to_owned());
    }
    for account in app.store.list_accounts().unwrap() {
        if let Some(stored) = app.store.refresh_token(&account.id).unwrap() {
            all.push(secrecy::ExposeSecret::expose_secret(&stored.refresh_token).to_owned());
        }
    }
    for request in app.mock.state.requests() {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        for (key, value) in url::form_urlencoded::parse(body.as_bytes()) {
            if matches!(&*key, "code" | "code_verifier" | "refresh_token") {
                all.push(value.into_owned());
            }
        }
        if let Some(json) = request.json() {
            for key in ["refresh_token", "code_verifier", "authorization_code"] {
                if let Some(v) = json[key].as_str() {
                    all.push(v.to_owned());
                }
            }
        }
    }
    all
}

fn assert_nothing_secret(app: &TestApp, answers: &[&Value]) {
    let logs = app.logs();
    for secret in secrets(app) {
        assert!(!logs.contains(&secret), "a secret reached the logs");
        for answer in answers {
            assert!(
                !answer.to_string().contains(&secret),
                "a secret left through the API"
            );
        }
    }
}

#[actix_web::test]
async fn refresh_now_stores_a_new_token_set_and_needs_the_write_scope() {
    let app = app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let read = app.admin_token(AdminScope::Read).await;
    let path = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    let (status, error) = send(&app, "POST", &path, &read, None).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(app.mock.state.refresh_calls(), 0);

    let before = app
        .store
        .refresh_token(&app.account_id)
        .unwrap()
        .unwrap()
        .token_version;
    let (status, view) = send(&app, "POST", &path, &write, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(app.mock.state.refresh_calls(), 1);
    let after = app
        .store
        .refresh_token(&app.account_id)
        .unwrap()
        .unwrap()
        .token_version;
    assert_eq!(after, before + 1);
    assert_eq!(view["state"], "active");
    assert!(view["last_refresh"].is_string() && view["token_expires_at"].is_string());
    assert_eq!(view["last_refresh_error"], Value::Null);
    // By ChatGPT account id too; unknown and malformed ids are told apart.
    let (status, _) = send(
        &app,
        "POST",
        "/admin/v1/accounts/acct-test-1/refresh",
        &write,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        "POST",
        "/admin/v1/accounts/nobody/refresh",
        &write,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        "POST",
        "/admin/v1/accounts/a%20b/refresh",
        &write,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(&app, "GET", &path, &write, None).await;
    assert_eq!(status, 405);
    assert_nothing_secret(&app, &[&view]);
    app.stop().await;
}

#[actix_web::test]
async fn a_dead_login_is_reported_by_refresh_now_and_shown_in_the_view() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let path = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    app.mock.state.push_token_failure(TokenFailure::Error {
        status: 401,
        code: "refresh_token_reused".into(),
    });
    let (status, error) = send(&app, "POST", &path, &token, None).await;
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["error"]["code"], "refresh_failed");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("refresh_token_reused"));
    let (_, view) = send(
        &app,
        "GET",
        &format!("/admin/v1/accounts/{}", app.account_id),
        &token,
        None,
    )
    .await;
    assert_eq!(view["state"], "reauth_required");
    assert_eq!(view["admin_state"], "active");
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("log the account in again"),
        "{view}"
    );
    // No token call for a login that needs a human.
    let (status, error) = send(&app, "POST", &path, &token, None).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("reauth_required"))
    );
    assert_eq!(app.mock.state.refresh_calls(), 1);
    assert_nothing_secret(&app, &[&view, &error]);
    app.stop().await;
}

#[actix_web::test]
async fn a_transient_refresh_failure_is_shown_and_leaves_the_account_serving() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let path = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    app.mock.state.push_token_failure(TokenFailure::Status(503));
    let (status, _) = send(&app, "POST", &path, &token, None).await;
    assert_eq!(status, 502);
    let account = format!("/admin/v1/accounts/{}", app.account_id);
    let shown = eventually(5, || async {
        let (_, view) = send(&app, "GET", &account, &token, None).await;
        view["last_refresh_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("503"))
    })
    .await;
    assert!(shown, "the failure is not in the view");
    let (_, view) = send(&app, "GET", &account, &token, None).await;
    assert_eq!(view["state"], "active");
    // Refresh now ignores the retry pause, and a success clears the error.
    let (status, view) = send(&app, "POST", &path, &token, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["last_refresh_error"], Value::Null);
    app.stop().await;
}

#[actix_web::test]
async fn a_device_login_over_the_api_completes_in_the_background() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let read = app.admin_token(AdminScope::Read).await;
    app.mock.state.script_login(|s| s.pending_polls = 2);
    let (status, session) = send(
        &app,
        "POST",
        "/admin/v1/logins/device",
        &token,
        Some(json!({"label": "team-b"})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["status"], "pending");
    assert!(session["verification_url"]
        .as_str()
        .unwrap()
        .ends_with("/codex/device"));
    assert!(session["user_code"].is_string());
    let path = format!("/admin/v1/logins/{}", session["id"].as_str().unwrap());
    let (status, _) = send(&app, "GET", &path, &read, None).await;
    assert_eq!(status, 403, "the user code is for writers only");
    let last = settled(&app, &path, &token).await;
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["created"], true);
    let account = format!(
        "/admin/v1/accounts/{}",
        last["account_id"].as_str().unwrap()
    );
    let (status, view) = send(&app, "GET", &account, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(view["label"], "team-b");
    assert_eq!(view["email"], "o***@example.com");
    assert_eq!(app.mock.state.device_polls(), 3);
    assert_nothing_secret(&app, &[&session, &last, &view]);
    app.stop().await;
}

#[actix_web::test]
async fn device_login_failures_over_the_api_are_explained() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    app.mock.state.script_login(|s| s.usercode_not_found = true);
    let (status, error) = send(&app, "POST", "/admin/v1/logins/device", &token, None).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "device_code_disabled");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Settings → Security"));

    app.mock.state.script_login(|s| {
        s.usercode_not_found = false;
        s.outcome = DeviceOutcome::Denied;
    });
    let (status, session) = send(&app, "POST", "/admin/v1/logins/device", &token, None).await;
    assert_eq!(status, 201);
    let path = format!("/admin/v1/logins/{}", session["id"].as_str().unwrap());
    let last = settled(&app, &path, &token).await;
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["code"], "access_denied", "{last}");
    assert_eq!(
        app.store.list_accounts().unwrap().len(),
        1,
        "nothing was stored"
    );
    app.stop().await;
}

/// The callback URL a browser would show after signing in at `authorize`.
async fn callback_of(authorize: &str) -> String {
    let response = awc::Client::builder()
        .disable_redirects()
        .finish()
        .get(authorize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn a_paste_login_over_the_api_checks_state_and_stores_the_account_once() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let (status, session) = send(&app, "POST", "/admin/v1/logins/paste", &token, None).await;
    assert_eq!(status, 201, "{session}");
    let authorize = session["authorize_url"].as_str().unwrap();
    assert!(authorize.contains("code_challenge_method=S256"));
    let complete = format!(
        "/admin/v1/logins/{}/complete",
        session["id"].as_str().unwrap()
    );
    let callback = callback_of(authorize).await;

    let foreign = json!({"callback_url": callback.replace("state=", "state=x")});
    let (status, error) = send(&app, "POST", &complete, &token, Some(foreign)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("state_mismatch"))
    );
    for bad in [
        json!({}),
        json!({"callback_url": 5}),
        json!({"callback_url": "x", "more": 1}),
    ] {
        let (status, _) = send(&app, "POST", &complete, &token, Some(bad)).await;
        assert_eq!(status, 400);
    }
    let (status, done) = send(
        &app,
        "POST",
        &complete,
        &token,
        Some(json!({"callback_url": callback})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed");
    let account_id = done["account_id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        "GET",
        &format!("/admin/v1/accounts/{account_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let again = json!({"callback_url": callback});
    let (status, error) = send(&app, "POST", &complete, &token, Some(again)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("login_finished"))
    );
    assert_eq!(app.mock.state.code_exchanges(), 1);

    let (status, _) = send(
        &app,
        "POST",
        "/admin/v1/logins/login_nope/complete",
        &token,
        Some(json!({"callback_url": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    let long = json!({"label": "x".repeat(65)});
    let (status, _) = send(&app, "POST", "/admin/v1/logins/paste", &token, Some(long)).await;
    assert_eq!(status, 400);
    let mut response = app
        .admin("POST", "/admin/v1/logins/paste", &token)
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    error_of(&mut response).await;
    assert_nothing_secret(&app, &[&session, &done]);
    app.stop().await;
}

#[actix_web::test]
async fn a_paste_login_without_codex_entitlement_says_so() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    app.mock.state.script_login(|s| {
        s.authorize_error = Some(("access_denied".into(), "missing_codex_entitlement".into()));
    });
    let (_, session) = send(&app, "POST", "/admin/v1/logins/paste", &token, None).await;
    let callback = callback_of(session["authorize_url"].as_str().unwrap()).await;
    let complete = format!(
        "/admin/v1/logins/{}/complete",
        session["id"].as_str().unwrap()
    );
    let (status, error) = send(
        &app,
        "POST",
        &complete,
        &token,
        Some(json!({"callback_url": callback})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error["error"]["code"], "missing_codex_entitlement");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Codex is not enabled for your workspace"));
    let (_, status) = send(
        &app,
        "GET",
        &format!("/admin/v1/logins/{}", session["id"].as_str().unwrap()),
        &token,
        None,
    )
    .await;
    assert_eq!(status["status"], "failed");
    app.stop().await;
}

#[actix_web::test]
async fn a_paste_login_the_store_cannot_keep_answers_with_an_error_status() {
    let app = app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let (_, session) = send(&app, "POST", "/admin/v1/logins/paste", &token, None).await;
    let callback = callback_of(session["authorize_url"].as_str().unwrap()).await;
    // The store refuses every new or changed account from here on (a full disk, say).
    let db = rusqlite::Connection::open(&app.settings.store.path).unwrap();
    for event in ["INSERT", "UPDATE"] {
        db.execute_batch(&format!(
            "CREATE TRIGGER refuse_{event} BEFORE {event} ON accounts \
             BEGIN SELECT RAISE(ABORT, 'store refused'); END;"
        ))
        .unwrap();
    }
    let id = session["id"].as_str().unwrap();
    let complete = format!("/admin/v1/logins/{id}/complete");
    let (status, error) = send(
        &app,
        "POST",
        &complete,
        &token,
        Some(json!({"callback_url": callback})),
    )
    .await;
    assert_eq!(status, 500, "{error}");
    assert_eq!(error["error"]["type"], "server_error");
    let (_, shown) = send(&app, "GET", &format!("/admin/v1/logins/{id}"), &token, None).await;
    assert_eq!(shown["status"], "failed", "{shown}");
    assert_eq!(shown["code"], "store_failed", "{shown}");
    assert!(app.logs().contains("could not be stored"));
    assert_nothing_secret(&app, &[&error, &shown]);
    app.stop().await;
}
