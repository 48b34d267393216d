//! Whose failure is it: a request that fails the same way on every account it moves to is at
//! fault itself, and must not open the accounts' breakers (one client would otherwise take the
//! pool from every other key); a failure of one account still moves the request and is charged.

use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::keys::reveal;
use serde_json::Value;

use crate::helpers::{admin_call, body, error_of, eventually, read_all, TestApp};
use crate::mock_upstream::{Scripted, MAX_NESTING};
use crate::pool_helpers::{server_error, spawn_pool, upstream_accounts};

/// A valid Responses request whose one tool's parameters nest `depth` levels deep in all.
fn nested_request(depth: usize) -> String {
    // The body, `tools` and the tool are three levels of their own.
    let arrays = depth - 3;
    let mut request = body("gpt-5.5", "hi", false);
    request["tools"] = serde_json::json!([{"type": "function", "name": "f", "parameters": null}]);
    let nested = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
    request
        .to_string()
        .replace("\"parameters\":null", &format!("\"parameters\":{nested}"))
}

/// Every account's health as the admin plane shows it, by relay id.
async fn health_of_every_account(app: &TestApp, token: &str) -> Vec<(String, Value)> {
    let (status, list) = admin_call(app, "GET", "/admin/v1/accounts", token, None).await;
    assert_eq!(status, 200);
    let accounts = list["data"].as_array().unwrap();
    accounts
        .iter()
        .map(|a| {
            let id = a["id"].as_str().unwrap().to_owned();
            (id, a["pool"]["health"].clone())
        })
        .collect()
}

/// A second API key, once the relay knows it.
async fn other_key(app: &TestApp) -> String {
    let key = reveal(&app.store.create_key("bystander").unwrap()).to_owned();
    let known = eventually(5, || async {
        let response = crate::helpers::client()
            .get(app.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(known, "the relay never learned the second key");
    key
}

#[actix_web::test]
async fn requests_that_fail_on_every_account_open_no_breaker_and_other_keys_are_served() {
    // The defaults an attacker met: three accounts, three failures open a breaker.
    let (app, pool) = spawn_pool(|s| s.routing.breaker_failure_threshold = 3).await;
    let token = app.admin_token(AdminScope::Read).await;
    let bystander = other_key(&app).await;
    let attack = nested_request(MAX_NESTING + 5);
    for round in 0..3 {
        let mut response = app.responses().send_body(attack.clone()).await.unwrap();
        assert_eq!(response.status(), 502, "round {round}");
        assert_eq!(error_of(&mut response).await["code"], "upstream_error");
    }
    let mut response = app
        .responses_as(&bystander)
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let bystander_status = response.status().as_u16();
    let _ = read_all(&mut response).await;
    let charged: Vec<_> = health_of_every_account(&app, &token)
        .await
        .into_iter()
        .filter(|(_, health)| health["status"] != "ready" || health["consecutive_failures"] != 0)
        .collect();
    assert!(
        charged.is_empty() && bystander_status == 200,
        "another key got {bystander_status}; accounts charged: {charged:?}"
    );
    // Each request stopped at the second account that failed it the same way.
    assert_eq!(upstream_accounts(&app).len(), 6 + 1);
    for account in &pool {
        let row = app.store.pool_row(&account.id).unwrap();
        assert_eq!(row.record.health, relay_actors::Health::default());
    }
    app.stop().await;
}

#[actix_web::test]
async fn one_account_failing_still_moves_the_request_and_is_charged() {
    let (app, pool) = spawn_pool(|s| s.routing.breaker_failure_threshold = 3).await;
    let token = app.admin_token(AdminScope::Read).await;
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, server_error());
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = read_all(&mut response).await;
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt, pool[1].chatgpt]);
    // Two accounts failing in different ways: both charged, the third serves.
    let bad_gateway = Scripted::Status {
        status: 502,
        body: "{\"detail\":\"bad gateway\"}".into(),
        headers: vec![],
    };
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, server_error());
    app.mock
        .state
        .push_scripted_for(pool[1].chatgpt, bad_gateway);
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = read_all(&mut response).await;
    let health = health_of_every_account(&app, &token).await;
    let failures = |id: &str| {
        let (_, health) = health.iter().find(|(i, _)| i == id).unwrap();
        health["consecutive_failures"].as_u64().unwrap()
    };
    assert_eq!(failures(&pool[0].id), 2, "{health:?}");
    assert_eq!(failures(&pool[1].id), 1, "{health:?}");
    assert_eq!(failures(&pool[2].id), 0, "{health:?}");
    app.stop().await;
}

#[actix_web::test]
async fn a_stream_cut_the_same_way_on_two_accounts_is_the_requests_own_failure() {
    let (app, pool) = spawn_pool(|_| {}).await;
    for account in &pool {
        app.mock
            .state
            .push_scripted_for(account.chatgpt, Scripted::CutAfterEvents(1));
    }
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(error_of(&mut response).await["code"], "upstream_error");
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt, pool[1].chatgpt]);
    for account in &pool {
        let row = app.store.pool_row(&account.id).unwrap();
        assert_eq!(row.record.health, relay_actors::Health::default());
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_upstream_that_cannot_be_reached_still_opens_the_breakers() {
    // A port nobody listens on: the body never leaves, so the failure cannot be the request's.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (app, _) = spawn_pool(|s| {
        s.routing.breaker_failure_threshold = 1;
        s.upstream.base_url = url.parse().unwrap();
    })
    .await;
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    error_of(&mut response).await;
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(&mut response).await["code"], "no_usable_account");
    app.stop().await;
}

#[actix_web::test]
async fn a_body_nesting_deeper_than_the_relay_reads_is_refused_once_an_account_fails_it() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let limit = codex_relay::nesting::MAX_DEPTH;
    let mut response = app
        .responses()
        .send_body(nested_request(limit + 1))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "json_nesting_too_deep");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt]);
    // At the limit the body is the upstream's to judge: two accounts fail it the same way.
    let response = app
        .responses()
        .send_body(nested_request(limit))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(upstream_accounts(&app).len(), 1 + 2);
    for account in &pool {
        let row = app.store.pool_row(&account.id).unwrap();
        assert_eq!(row.record.health, relay_actors::Health::default());
    }
    app.stop().await;
}
