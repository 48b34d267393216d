//! Limits per key and per tenant: request rates with burst (GCRA), concurrent requests, token
//! quotas (persisted across restarts), the global in-flight cap, and OpenAI's rate-limit headers.

use std::time::Duration;

use codex_relay::domain::Limits;
use codex_relay::store::{keys::reveal, NewKey, NewTenant, Operation, Store};
use serde_json::Value;

use crate::helpers::{body, error_of, eventually, read_all, spawn_app_seeded, TestApp};

/// A new key named `name`, of `tenant` (id or name) if any, with `limits`: its secret text.
pub fn key_with(store: &Store, name: &str, tenant: Option<&str>, limits: Limits) -> String {
    let new = NewKey {
        name: name.to_owned(),
        tenant: tenant.map(str::to_owned),
        limits,
        ..NewKey::default()
    };
    reveal(&store.create_key_with(&new).unwrap()).to_owned()
}

fn header<'a>(response: &'a awc::ClientResponse, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn post(app: &TestApp, key: &str, stream: bool) -> awc::ClientResponse {
    app.responses_as(key)
        .send_json(&body("gpt-5.5", "hi", stream))
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_burst_beyond_the_rate_gets_429s_with_retry_after_while_another_key_is_unaffected() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let limits = Limits {
                rpm: Some(1),
                burst: Some(2),
                ..Limits::default()
            };
            vec![
                key_with(store, "bursty", None, limits),
                key_with(store, "calm", None, Limits::default()),
            ]
        },
    )
    .await;
    let (bursty, calm) = (&app.seeded[0], &app.seeded[1]);
    for remaining in ["1", "0"] {
        let mut response = post(&app, bursty, false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("1"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            Some(remaining)
        );
        response.body().await.unwrap();
    }
    let mut refused = post(&app, bursty, false).await;
    assert_eq!(refused.status(), 429);
    // One request per minute: the next cell is due a minute after the burst began.
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(&refused, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    let error = error_of(&mut refused).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");
    assert_eq!(
        app.mock.state.responses_requests().len(),
        2,
        "refused before the upstream"
    );

    // Another key keeps its own (default) rate.
    let response = post(&app, calm, false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("600"));
    app.stop().await;
}

#[actix_web::test]
async fn a_tenant_rate_is_shared_by_its_keys() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let limits = Limits {
                rpm: Some(1),
                ..Limits::default()
            };
            let tenant = NewTenant {
                name: "search".into(),
                limits,
                hidden_models: Vec::new(),
            };
            store.create_tenant(&tenant).unwrap();
            vec![
                key_with(store, "one", Some("search"), Limits::default()),
                key_with(store, "two", Some("search"), Limits::default()),
            ]
        },
    )
    .await;
    let mut first = app
        .get("/v1/models")
        .bearer_auth(&app.seeded[0])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    first.body().await.unwrap();
    let mut second = app
        .get("/v1/models")
        .bearer_auth(&app.seeded[1])
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert!(error_of(&mut second).await["message"]
        .as_str()
        .unwrap()
        .contains("tenant"));
    app.stop().await;
}

#[actix_web::test]
async fn concurrent_requests_beyond_the_limit_are_refused_until_one_ends() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let limits = Limits {
                max_concurrent: Some(1),
                ..Limits::default()
            };
            vec![key_with(store, "single", None, limits)]
        },
    )
    .await;
    let key = &app.seeded[0];
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut streaming = post(&app, key, true).await;
    assert_eq!(streaming.status(), 200);
    let mut refused = post(&app, key, true).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    let error = error_of(&mut refused).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert!(error["message"].as_str().unwrap().contains("concurrent"));
    // The default key is not held back by this key's stream.
    assert_eq!(post(&app, &app.key, true).await.status(), 200);

    read_all(&mut streaming).await;
    app.mock.state.set_event_delay(Duration::ZERO);
    let restored = eventually(5, || async {
        let mut response = post(&app, key, false).await;
        let ok = response.status() == 200;
        response.body().await.unwrap();
        ok
    })
    .await;
    assert!(restored, "the slot is given back when the stream ends");
    app.stop().await;
}

#[actix_web::test]
async fn beyond_the_global_in_flight_cap_the_relay_sheds_load_with_503() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.max_in_flight = 1).await;
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut streaming = post(&app, &app.key, true).await;
    assert_eq!(streaming.status(), 200);
    let mut shed = post(&app, &app.key, false).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(header(&shed, "retry-after"), Some("1"));
    assert_eq!(error_of(&mut shed).await["code"], "overloaded");
    assert_eq!(app.mock.state.responses_requests().len(), 1);

    read_all(&mut streaming).await;
    app.mock.state.set_event_delay(Duration::ZERO);
    let served = eventually(5, || async {
        post(&app, &app.key, false).await.status() == 200
    })
    .await;
    assert!(served, "capacity comes back when the stream ends");
    app.stop().await;
}

/// Seconds from now to the next UTC midnight.
fn until_midnight() -> i64 {
    let now = chrono::Utc::now();
    let tomorrow = now.date_naive().succ_opt().unwrap();
    (tomorrow.and_hms_opt(0, 0, 0).unwrap().and_utc() - now).num_seconds()
}

/// Waits out the last minute of a UTC day, so a test that spends a daily quota and restarts
/// does not straddle midnight (where the quota would rightly renew under it).
pub async fn away_from_midnight() {
    let left = until_midnight();
    if left < 60 {
        let wait = u64::try_from(left + 1).unwrap_or(1);
        actix_web::rt::time::sleep(Duration::from_secs(wait)).await;
    }
}

#[actix_web::test]
async fn a_daily_token_quota_is_enforced_and_survives_a_restart() {
    away_from_midnight().await;
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let limits = Limits {
                daily_tokens: Some(1),
                ..Limits::default()
            };
            vec![key_with(store, "thrifty", None, limits)]
        },
    )
    .await;
    let key = app.seeded[0].clone();
    let mut first = post(&app, &key, true).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), Some("1"));
    assert_eq!(header(&first, "x-ratelimit-remaining-tokens"), Some("1"));
    read_all(&mut first).await;

    let refused = |app: &TestApp| {
        let request = app
            .responses_as(&key)
            .send_json(&body("gpt-5.5", "hi", false));
        async move {
            let mut response = request.await.unwrap();
            if response.status() != 429 {
                response.body().await.unwrap();
                return false;
            }
            let retry_after: i64 = header(&response, "retry-after").unwrap().parse().unwrap();
            assert!((retry_after - until_midnight()).abs() <= 5, "{retry_after}");
            assert_eq!(header(&response, "x-ratelimit-remaining-tokens"), Some("0"));
            let error = error_of(&mut response).await;
            assert_eq!(error["code"], "quota_exceeded");
            true
        }
    };
    assert!(eventually(5, || refused(&app)).await, "the quota is spent");
    let persisted = eventually(5, || async {
        let store = app.store.clone();
        store
            .run(Operation::Read, |s| s.usage_totals(&today(), &today()[..7]))
            .await
            .unwrap()
            .iter()
            .any(|t| t.day_tokens > 0)
    })
    .await;
    assert!(persisted, "usage is written to the store");

    let app = app.restart().await;
    assert!(refused(&app).await, "a restart does not reset the quota");
    app.stop().await;
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[actix_web::test]
async fn a_tenant_token_quota_is_shared_by_its_keys() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let tenant = NewTenant {
                name: "batch".into(),
                limits: Limits {
                    monthly_tokens: Some(1),
                    ..Limits::default()
                },
                hidden_models: Vec::new(),
            };
            store.create_tenant(&tenant).unwrap();
            vec![
                key_with(store, "one", Some("batch"), Limits::default()),
                key_with(store, "two", Some("batch"), Limits::default()),
            ]
        },
    )
    .await;
    let mut first = post(&app, &app.seeded[0], false).await;
    assert_eq!(first.status(), 200);
    first.body().await.unwrap();
    let spent = eventually(5, || async {
        let mut response = post(&app, &app.seeded[1], false).await;
        if response.status() != 429 {
            response.body().await.unwrap();
            return false;
        }
        let error: Value = error_of(&mut response).await;
        error["code"] == "quota_exceeded" && error["message"].as_str().unwrap().contains("tenant")
    })
    .await;
    assert!(spent, "the tenant's other key finds the quota spent");
    // A key outside the tenant is not affected.
    assert_eq!(post(&app, &app.key, false).await.status(), 200);
    app.stop().await;
}

#[actix_web::test]
async fn every_v1_answer_carries_the_rate_limit_headers_and_an_expired_key_is_refused() {
    let app = spawn_app_seeded(
        |_| {},
        |store| {
            let new = NewKey {
                name: "old".into(),
                expires_at: Some(chrono::Utc::now().timestamp() - 10),
                ..NewKey::default()
            };
            vec![reveal(&store.create_key_with(&new).unwrap()).to_owned()]
        },
    )
    .await;
    for path in [
        "/v1/models",
        "/v1/models/gpt-5.5",
        "/v1/models/nope",
        "/v1/nowhere",
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(
            header(&response, "x-ratelimit-limit-requests"),
            Some("600"),
            "{path}"
        );
        assert!(
            header(&response, "x-ratelimit-reset-requests").is_some(),
            "{path}"
        );
        assert!(
            header(&response, "x-ratelimit-limit-tokens").is_none(),
            "no token quota"
        );
    }
    let mut expired = app
        .get("/v1/models")
        .bearer_auth(&app.seeded[0])
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let error = error_of(&mut expired).await;
    assert_eq!(error["code"], "invalid_api_key");
    assert!(error["message"].as_str().unwrap().contains("expired"));
    app.stop().await;
}

#[actix_web::test]
async fn the_default_key_rate_can_be_turned_off() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.default_key_rpm = 0).await;
    let response = app.get("/v1/models").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(&response, "x-ratelimit-limit-requests").is_none());
    app.stop().await;
}
