//! Cooldowns, breakers, probes, the in-flight cap and durable state, with real accounts of the
//! mock upstream (the breaker's own persistence is tested with the store).

use std::time::Duration;

use relay_actors::Breaker;

use crate::helpers::{body, error_of, eventually, read_all};
use crate::pool_helpers::{ok, server_error, spawn_pool, upstream_accounts, usage_limit};

#[actix_web::test]
async fn a_cooling_account_is_skipped_and_returns_after_its_reset() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let first = pool[0].chatgpt;
    let (script, _) = usage_limit(2);
    app.mock.state.push_scripted_for(first, script);
    ok(&app).await;
    for _ in 0..5 {
        ok(&app).await;
    }
    assert_eq!(
        app.mock.state.responses_for(first),
        1,
        "skipped while cooling"
    );
    let back = eventually(10, || async {
        ok(&app).await;
        app.mock.state.responses_for(first) > 1
    })
    .await;
    assert!(back, "the account never returned after its reset");
    app.stop().await;
}

#[actix_web::test]
async fn an_open_breaker_is_probed_and_closes() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let first = &pool[0];
    app.mock
        .state
        .set_standing_for(first.chatgpt, Some(server_error()));
    ok(&app).await;
    ok(&app).await;
    let open = eventually(5, || async {
        let row = app.store.pool_row(&first.id).unwrap();
        matches!(row.record.health.breaker, Breaker::Open { .. })
    })
    .await;
    assert!(open, "two failures did not open the breaker");
    // While the account is down, probes fail and the breaker stays open.
    let probed = eventually(10, || async {
        app.mock.state.models_requests_for(first.chatgpt) >= 1
    })
    .await;
    assert!(probed, "the open breaker was never probed");
    let row = app.store.pool_row(&first.id).unwrap();
    assert!(matches!(row.record.health.breaker, Breaker::Open { .. }));
    // The account recovers: the next probe closes the breaker and the account serves again.
    app.mock.state.set_standing_for(first.chatgpt, None);
    let closed = eventually(10, || async {
        let row = app.store.pool_row(&first.id).unwrap();
        row.record.health.breaker == Breaker::Closed { failures: 0 }
    })
    .await;
    assert!(closed, "the probe did not close the breaker");
    let before = app.mock.state.responses_for(first.chatgpt);
    ok(&app).await;
    assert_eq!(app.mock.state.responses_for(first.chatgpt), before + 1);
    app.stop().await;
}

#[actix_web::test]
async fn the_in_flight_cap_sends_extra_requests_elsewhere_then_answers_busy() {
    let (app, pool) = spawn_pool(|s| s.routing.max_in_flight = 1).await;
    app.mock.state.set_event_delay(Duration::from_millis(300));
    let open: Vec<_> = (0..3)
        .map(|_| app.responses().send_json(&body("gpt-5.5", "hi", true)))
        .collect();
    let mut streams = Vec::new();
    for request in open {
        let response = request.await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(&mut response).await["code"], "pool_busy");
    let mut seen = upstream_accounts(&app);
    seen.sort();
    let mut all: Vec<&str> = pool.iter().map(|a| a.chatgpt).collect();
    all.sort();
    assert_eq!(seen, all, "one stream per account");
    for mut stream in streams {
        let _ = read_all(&mut stream).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn cooldowns_and_quota_survive_a_restart() {
    let (app, pool) = spawn_pool(|_| {}).await;
    app.mock
        .state
        .set_used_percent_for(pool[1].chatgpt, 40.0, 5.0);
    let (script, _) = usage_limit(600);
    app.mock.state.push_scripted_for(pool[0].chatgpt, script);
    ok(&app).await; // pool[0] cools, pool[1] answers with its quota headers
    let saved = eventually(5, || async {
        let cooling = app
            .store
            .pool_row(&pool[0].id)
            .unwrap()
            .record
            .health
            .cooling;
        let quota = app.store.pool_row(&pool[1].id).unwrap().record.quota;
        cooling.is_some() && quota.is_some_and(|q| q.remaining_percent() == 60.0)
    })
    .await;
    assert!(saved, "the pool state was not saved");
    let app = app.restart().await;
    assert!(crate::pool_helpers::usable_accounts_become(&app, 2).await);
    for _ in 0..3 {
        ok(&app).await;
    }
    assert_eq!(app.mock.state.responses_for(pool[0].chatgpt), 1);
    app.stop().await;
}
