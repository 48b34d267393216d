//! The governance and store families on `GET /metrics`: calls admitted and tokens used per
//! tenant (the four kinds the upstream reports), limiter rejections by tenant, kind and scope, the
//! per-key families when asked for, failed usage writes and store faults, the catalog's age.

use std::time::Duration;

use codex_relay::domain::Limits;
use codex_relay::store::{NewTenant, Store};
use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{body, eventually, read_all, spawn_app_seeded, spawn_app_with, sse_events};
use crate::limits::key_with;
use crate::metrics_requests::Scrape;

/// A tenant whose name the exposition format must escape (an operator may choose quotes).
const TEAM: &str = r#"team "blue" \ ops"#;
const REJECTIONS: &str = "codex_relay_limiter_rejections_total";
const TENANT_TOKENS: &str = "codex_relay_tenant_tokens_total";

/// The four token counts of a Responses `usage` object, by their `kind` label.
fn token_kinds(usage: &Value) -> [(&'static str, f64); 4] {
    let count = |value: &Value| value.as_u64().unwrap() as f64;
    [
        ("input", count(&usage["input_tokens"])),
        (
            "cached",
            count(&usage["input_tokens_details"]["cached_tokens"]),
        ),
        ("output", count(&usage["output_tokens"])),
        (
            "reasoning",
            count(&usage["output_tokens_details"]["reasoning_tokens"]),
        ),
    ]
}

/// Tenant [`TEAM`] with a key allowed one request (`once`) and a key allowed one at a time
/// (`single`), and a key of no tenant allowed one token a day (`metered`).
fn seed_limited_keys(store: &Store) -> Vec<String> {
    let team = NewTenant {
        name: TEAM.into(),
        limits: Limits::default(),
        hidden_models: Vec::new(),
    };
    store.create_tenant(&team).unwrap();
    let once = Limits {
        rpm: Some(1),
        burst: Some(1),
        ..Limits::default()
    };
    let single = Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    };
    let metered = Limits {
        daily_tokens: Some(1),
        ..Limits::default()
    };
    vec![
        key_with(store, "once", Some(TEAM), once),
        key_with(store, "single", Some(TEAM), single),
        key_with(store, "metered", None, metered),
    ]
}

#[actix_web::test]
async fn tenants_are_counted_with_their_tokens_and_every_limit_that_refused_them() {
    let app = spawn_app_seeded(
        |s| {
            s.metrics.open = true;
            s.metrics.per_key = true;
        },
        seed_limited_keys,
    )
    .await;
    let (once, single, metered) = (&app.seeded[0], &app.seeded[1], &app.seeded[2]);
    let post = |key: &str, stream| {
        app.responses_as(key)
            .send_json(&body("gpt-5.5", "hi", stream))
    };

    // A rate: the second request of a key allowed one.
    let mut answer = post(once, false).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(post(once, false).await.unwrap().status(), 429);
    // Concurrency: a second call while the key's one stream is still running.
    app.mock.state.set_event_delay(Duration::from_millis(50));
    let mut held = post(single, true).await.unwrap();
    held.next().await.unwrap().unwrap();
    assert_eq!(post(single, false).await.unwrap().status(), 429);
    let events = sse_events(&read_all(&mut held).await);
    app.mock.state.set_event_delay(Duration::ZERO);
    let streamed = &events.last().unwrap()["response"]["usage"];
    // A quota: the key's day is spent by its first call.
    assert_eq!(post(metered, false).await.unwrap().status(), 200);
    assert_eq!(post(metered, false).await.unwrap().status(), 429);

    let scrape = Scrape::of(&app, "").await;
    let rejected = |tenant, kind| [("tenant", tenant), ("kind", kind), ("scope", "key")];
    assert_eq!(scrape.value(REJECTIONS, &rejected(TEAM, "rate")), Some(1.0));
    assert_eq!(
        scrape.value(REJECTIONS, &rejected(TEAM, "concurrency")),
        Some(1.0)
    );
    assert_eq!(scrape.value(REJECTIONS, &rejected("", "quota")), Some(1.0));
    let requests = "codex_relay_tenant_requests_total";
    assert_eq!(scrape.value(requests, &[("tenant", TEAM)]), Some(2.0));
    assert_eq!(scrape.value(requests, &[("tenant", "")]), Some(1.0));
    let whole = token_kinds(&answer["usage"]);
    for ((kind, whole), (_, stream)) in whole.into_iter().zip(token_kinds(streamed)) {
        assert!(whole > 0.0, "the mock reports some {kind} tokens");
        let counted = scrape.value(TENANT_TOKENS, &[("tenant", TEAM), ("kind", kind)]);
        assert_eq!(counted, Some(whole + stream), "{kind}");
    }
    // The per-key families name keys by id, with their tenant.
    let keys = app.store.list_keys().unwrap();
    let id_of = |name: &str| keys.iter().find(|k| k.name == name).unwrap().id.clone();
    let once_id = id_of("once");
    let key_requests = [("key", once_id.as_str()), ("tenant", TEAM)];
    assert_eq!(
        scrape.value("codex_relay_key_requests_total", &key_requests),
        Some(1.0)
    );
    let key_rejected = [("key", once_id.as_str()), ("kind", "rate")];
    assert_eq!(
        scrape.value("codex_relay_key_limiter_rejections_total", &key_rejected),
        Some(1.0)
    );
    let metered_id = id_of("metered");
    let metered_input = [("key", metered_id.as_str()), ("kind", "input")];
    assert!(scrape.count("codex_relay_key_tokens_total", &metered_input) > 0.0);
    app.stop().await;
}

#[actix_web::test]
async fn load_shed_at_the_global_cap_is_an_overloaded_rejection_of_global_scope() {
    let app = spawn_app_with(|s| {
        s.metrics.open = true;
        s.limits.max_in_flight = 1;
    })
    .await;
    app.mock.state.set_event_delay(Duration::from_millis(50));
    let post = |stream| app.responses().send_json(&body("gpt-5.5", "hi", stream));
    let mut held = post(true).await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(post(false).await.unwrap().status(), 503);
    read_all(&mut held).await;
    let scrape = Scrape::of(&app, "").await;
    let overloaded = [("tenant", ""), ("kind", "overloaded"), ("scope", "global")];
    assert_eq!(scrape.value(REJECTIONS, &overloaded), Some(1.0));
    assert_eq!(scrape.count(REJECTIONS, &[]), 1.0);
    app.stop().await;
}

#[actix_web::test]
async fn failed_usage_writes_count_as_usage_writer_and_store_errors() {
    let app = spawn_app_with(|s| s.metrics.open = true).await;
    let before = Scrape::of(&app, "").await;
    assert_eq!(
        before.value("codex_relay_usage_writer_errors_total", &[]),
        Some(0.0)
    );
    let store_writes = [("operation", "write")];
    assert_eq!(
        before.value("codex_relay_store_errors_total", &store_writes),
        Some(0.0)
    );
    // The table the usage writer adds to is gone (a broken file, as far as the relay can tell).
    let db = rusqlite::Connection::open(&app.settings.store.path).unwrap();
    db.execute_batch("DROP TABLE usage_daily").unwrap();
    let mut answer = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the client is served all the same");
    answer.body().await.unwrap();
    let counted = eventually(5, || async {
        let scrape = Scrape::of(&app, "").await;
        scrape.value("codex_relay_usage_writer_errors_total", &[]) == Some(1.0)
            && scrape.count("codex_relay_store_errors_total", &store_writes) >= 1.0
    })
    .await;
    assert!(counted, "{}", Scrape::of(&app, "").await.text);
    app.stop().await;
}

#[actix_web::test]
async fn the_catalog_age_counts_from_the_last_fetch() {
    let app = spawn_app_with(|s| s.metrics.open = true).await;
    let scrape = Scrape::of(&app, "").await;
    let age = scrape
        .value("codex_relay_model_catalog_age_seconds", &[])
        .expect("fetched at startup");
    assert!((0.0..60.0).contains(&age), "{age}");
    app.stop().await;

    let never = spawn_app_with(|s| {
        s.metrics.open = true;
        s.models.refresh_interval_secs = 0;
    })
    .await;
    let scrape = Scrape::of(&never, "").await;
    assert_eq!(
        scrape.value("codex_relay_model_catalog_age_seconds", &[]),
        None
    );
    never.stop().await;
}
