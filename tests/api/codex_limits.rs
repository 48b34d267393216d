//! The limits a Codex client shows are the caller's: the backend's rate-limit headers (one pool
//! account's) never reach the client; the caller's token quotas and the pool's headroom are
//! written instead, and served on the usage endpoint the Codex CLI reads.

use codex_relay::domain::Limits;
use codex_relay::oauth::auth_json;
use serde_json::Value;

use crate::helpers::{body, client, eventually, read_all, spawn_app_seeded, TestApp};
use crate::limits::key_with;
use crate::mock_upstream::fake_auth_json;

fn header(response: &awc::ClientResponse, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Posts a non-streaming call with `key`; returns the primary window's used percent and length.
async fn primary_shown(app: &TestApp, key: &str) -> (Option<String>, Option<String>) {
    let mut response = app
        .responses_as(key)
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    read_all(&mut response).await;
    assert!(header(&response, "x-codex-credits-balance").is_none());
    (
        header(&response, "x-codex-primary-used-percent"),
        header(&response, "x-codex-primary-window-minutes"),
    )
}

#[actix_web::test]
async fn the_pool_headroom_is_shown_never_one_accounts_numbers() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let exp = chrono::Utc::now().timestamp() + 3600;
            let auth = fake_auth_json("acct-test-2", "two@example.com", "plus", exp);
            let account = auth_json::parse(&auth.to_string()).unwrap();
            store.import_account(&account).unwrap();
            Vec::new()
        },
    )
    .await;
    app.mock
        .state
        .set_used_percent_for("acct-test-1", 80.0, 10.0);
    app.mock
        .state
        .set_used_percent_for("acct-test-2", 20.0, 30.0);
    // Before the pool has told anything, the backend's headers are stripped and none is shown.
    let (first, _) = primary_shown(&app, &app.key).await;
    assert!(
        first.is_none() || first.as_deref() == Some("50.0"),
        "{first:?}"
    );
    // Once both accounts have answered, the pool's mean is shown: neither account's 80 nor 20.
    let shown = eventually(10, || async {
        let (used, minutes) = primary_shown(&app, &app.key).await;
        assert_ne!(used.as_deref(), Some("80.0"));
        assert_ne!(used.as_deref(), Some("20.0"));
        used.as_deref() == Some("50.0") && minutes.as_deref() == Some("300")
    })
    .await;
    assert!(shown, "the pool's mean headroom is shown");
    assert!(app.mock.state.responses_for("acct-test-1") > 0);
    assert!(app.mock.state.responses_for("acct-test-2") > 0);
    app.stop().await;
}

#[actix_web::test]
async fn a_callers_quota_is_shown_when_it_is_tighter_than_the_pool() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let limits = Limits {
                daily_tokens: Some(100_000),
                ..Limits::default()
            };
            vec![key_with(store, "thrifty", None, limits)]
        },
    )
    .await;
    app.mock.state.set_used_percent_for("acct-test-1", 0.0, 0.0);
    let key = app.seeded[0].clone();
    // A large turn spends a good share of the day's quota.
    let big = body("gpt-5.5", &"words ".repeat(40_000), false);
    let mut response = app.responses_as(&key).send_json(&big).await.unwrap();
    assert_eq!(response.status(), 200);
    read_all(&mut response).await;
    let (used, minutes) = primary_shown(&app, &key).await;
    let used: f64 = used.expect("the day's quota is shown").parse().unwrap();
    assert!((50.0..=100.0).contains(&used), "{used}");
    assert_eq!(minutes.as_deref(), Some("1440"));
    // The usage endpoint says the same, under both paths the Codex CLI uses.
    for path in ["/api/codex/usage", "/backend-api/wham/usage"] {
        let mut response = client()
            .get(app.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let usage: Value = response.json().await.unwrap();
        let primary = &usage["rate_limit"]["primary_window"];
        assert_eq!(primary["limit_window_seconds"], 86_400, "{usage}");
        assert!(primary["used_percent"].as_i64().unwrap() >= 50, "{usage}");
        assert!(primary["reset_at"].as_i64().unwrap() > chrono::Utc::now().timestamp());
        assert_eq!(usage["rate_limit"]["limit_reached"], false);
    }
    // Another key without a quota sees only the pool's (unused) headroom.
    let mut other = client()
        .get(app.url("/api/codex/usage"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let other: Value = other.json().await.unwrap();
    let pool = &other["rate_limit"]["primary_window"];
    assert!(pool.is_null() || pool["used_percent"] == 0, "{other}");
    app.stop().await;
}

#[actix_web::test]
async fn the_usage_endpoint_needs_a_key() {
    let app = spawn_app_seeded(|_| {}, |_| Vec::new()).await;
    for path in ["/api/codex/usage", "/backend-api/wham/usage"] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    app.stop().await;
}
