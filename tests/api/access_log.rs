//! The access log under attack: what a client chose (path, model) is bounded and escaped in the
//! log line and in the error it gets back; failed authentications from one address are throttled
//! past a small budget — 429 with Retry-After, and no access line each — while a valid key from
//! the same address is still served.

use codex_relay::store::admin_tokens::AdminScope;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::{
    body, client, error_of, retry_after_secs, spawn_app, spawn_app_seeded, spawn_app_with, TestApp,
};

/// Every log line, parsed.
fn log_lines(app: &TestApp) -> Vec<(String, Value)> {
    app.logs()
        .lines()
        .map(|line| (line.to_owned(), serde_json::from_str(line).unwrap()))
        .collect()
}

/// The access lines (msg `request`) and their statuses.
fn access_statuses(app: &TestApp) -> Vec<u64> {
    log_lines(app)
        .iter()
        .filter(|(_, v)| v["msg"] == "request")
        .map(|(_, v)| v["status"].as_u64().unwrap())
        .collect()
}

#[actix_web::test]
async fn a_long_path_and_a_long_model_make_bounded_access_lines_and_errors() {
    let app = spawn_app().await;
    let long = "a".repeat(60_000);
    let response = client()
        .get(app.url(&format!("/v1/{long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let mut response = app.get(&format!("/v1/{long}")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let unknown_url = error_of(&mut response).await;
    let mut response = app
        .responses()
        .send_json(&body(&long, "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let unknown_model = error_of(&mut response).await;
    for error in [&unknown_url, &unknown_model] {
        let message = error["message"].as_str().unwrap();
        assert!(message.len() < 512, "{} bytes", message.len());
        assert!(message.contains("…[+"), "{message}");
    }
    let escape = "gpt\u{1b}[31m\nred\u{202e}";
    let response = app
        .responses()
        .send_json(&body(escape, "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let admin = client()
        .get(format!("http://{}/admin/v1/{long}", app.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 401);

    let lines = log_lines(&app);
    let access: Vec<_> = lines
        .iter()
        .filter(|(_, v)| v["msg"] == "request")
        .collect();
    assert_eq!(access.len(), 5, "{access:?}");
    for (line, value) in &access {
        assert!(line.len() < 1024, "a {} byte access line", line.len());
        for field in ["method", "path", "model"] {
            let text = value[field].as_str().unwrap_or_default();
            assert!(!text.chars().any(char::is_control), "{field}: {text:?}");
            assert!(!text.contains('\u{202e}'), "{field}: {text:?}");
        }
    }
    let marked = |field: &str| {
        access
            .iter()
            .filter(|(_, v)| v[field].as_str().is_some_and(|t| t.contains("…[+")))
            .count()
    };
    assert_eq!(marked("path"), 3);
    assert_eq!(marked("model"), 1);
    let escaped = access
        .iter()
        .any(|(_, v)| v["model"] == "gpt\\u{1b}[31m\\u{a}red\\u{202e}");
    assert!(escaped, "{access:?}");
    app.stop().await;
}

#[actix_web::test]
async fn bad_keys_past_the_budget_get_429_without_access_lines_and_a_good_key_is_served() {
    let app = spawn_app_with(|s| s.limits.auth_failures_per_minute = 3).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..10 {
        let request = client().get(app.url("/v1/models"));
        let request = match n {
            9 => request,
            _ => request.bearer_auth(format!("sk-relay-guess-{n}")),
        };
        let response = request.send().await.unwrap();
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    let mut refused = last.unwrap();
    let retry_after = retry_after_secs(&refused);
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let error = error_of(&mut refused).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");

    // The same address with a valid key: served, and logged as usual.
    let response = app.get("/v1/models").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(access_statuses(&app), [401, 401, 401, 200]);
    let throttled = log_lines(&app)
        .into_iter()
        .filter(|(_, v)| {
            v["msg"]
                .as_str()
                .unwrap()
                .starts_with("client address throttled")
        })
        .map(|(_, v)| v)
        .collect::<Vec<_>>();
    assert_eq!(throttled.len(), 1, "one line when the throttle starts");
    assert_eq!(throttled[0]["address"], "127.0.0.1");
    app.stop().await;
}

#[actix_web::test]
async fn bad_admin_tokens_past_the_budget_get_429_and_a_good_token_is_served() {
    let app = spawn_app_seeded(
        |s| s.limits.auth_failures_per_minute = 2,
        |store| {
            let created = store.create_admin_token("ops", AdminScope::Read).unwrap();
            vec![created.token.expose_secret().to_owned()]
        },
    )
    .await;
    let mut statuses = Vec::new();
    for token in [
        "sk-relay-admin-guess-1",
        "sk-relay-admin-guess-2",
        "",
        "sk-relay-admin-guess-3",
    ] {
        let response = app
            .admin("GET", "/admin/v1/accounts", token)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429]);
    let mut response = app
        .admin("POST", "/admin/v1/keys", "sk-relay-admin-guess-4")
        .send_json(&json!({"name": "x"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    error_of(&mut response).await;
    let response = app
        .admin("GET", "/admin/v1/accounts", &app.seeded[0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(access_statuses(&app), [401, 401, 200]);
    app.stop().await;
}
