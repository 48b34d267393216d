//! Whose failure is it: a request that fails the same way on every account it moves to is at
//! fault itself, and must not open the accounts' breakers (one client would otherwise take the
//! pool from every other key); a failure of one account still moves the request and is charged.

use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::keys::reveal;
use serde_json::Value;

use crate::helpers::{admin_call, body, error_of, eventually, read_all, TestApp};
use crate::mock_upstream::{Scripted, MAX_NESTING};
use crate::pool_helpers::{logged, server_error, spawn_pool, upstream_accounts, PoolAccount};

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

/// The usual request, as text.
fn plain(stream: bool) -> String {
    body("gpt-5.5", "hi", stream).to_string()
}

/// Posts `request` and reads the whole answer: its status and its error code (null for none).
async fn post(app: &TestApp, request: String) -> (u16, Value) {
    let mut response = app.responses().send_body(request).await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        let _ = read_all(&mut response).await;
        return (status, Value::Null);
    }
    (status, error_of(&mut response).await["code"].clone())
}

/// No account's health changed, as the store keeps it.
fn assert_uncharged(app: &TestApp, pool: &[PoolAccount]) {
    for account in pool {
        let row = app.store.pool_row(&account.id).unwrap();
        assert_eq!(
            row.record.health,
            relay_actors::Health::default(),
            "{}",
            account.id
        );
    }
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
        let answer = post(&app, attack.clone()).await;
        assert_eq!(answer, (502, "upstream_error".into()), "round {round}");
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
    assert_uncharged(&app, &pool);
    app.stop().await;
}

#[actix_web::test]
async fn one_account_failing_still_moves_the_request_and_is_charged() {
    let (app, pool) = spawn_pool(|s| s.routing.breaker_failure_threshold = 3).await;
    let token = app.admin_token(AdminScope::Read).await;
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, server_error());
    assert_eq!(post(&app, plain(false)).await.0, 200);
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
    assert_eq!(post(&app, plain(true)).await.0, 200);
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
    let answer = post(&app, plain(true)).await;
    assert_eq!(answer, (502, "upstream_error".into()));
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt, pool[1].chatgpt]);
    assert_uncharged(&app, &pool);
    app.stop().await;
}

#[actix_web::test]
async fn a_failure_found_to_be_the_requests_is_logged_with_the_attempt_that_showed_it() {
    let (app, pool) = spawn_pool(|_| {}).await;
    for account in &pool[..2] {
        app.mock
            .state
            .push_scripted_for(account.chatgpt, Scripted::CutAfterEvents(1));
    }
    assert_eq!(post(&app, plain(true)).await.0, 502);
    let access_lines = || -> Vec<Value> {
        let lines = logged(&app, "request").into_iter();
        lines.filter(|l| l["path"] == "/v1/responses").collect()
    };
    assert!(eventually(5, || async { !access_lines().is_empty() }).await);
    let moved = logged(
        &app,
        "upstream attempt failed; the request moves to another account",
    );
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["attempt"], 1);
    assert_eq!(moved[0]["account_id"], pool[0].id.as_str());
    assert_eq!(moved[0]["reason"], "upstream_unreachable");
    let at_fault = logged(&app, "the upstream failed this request the same way on two accounts: the request is at fault; no other account is tried and neither is charged");
    assert_eq!(at_fault.len(), 1, "{at_fault:?}");
    assert_eq!(at_fault[0]["level"], "WARN");
    assert_eq!(at_fault[0]["attempt"], 2);
    assert_eq!(at_fault[0]["account_id"], pool[1].id.as_str());
    assert_eq!(at_fault[0]["reason"], "upstream_unreachable");
    // The access line names the last account tried and what it answered (a 200 stream, cut).
    let access = &access_lines()[0];
    assert_eq!(access["account_id"], pool[1].id.as_str(), "{access}");
    assert_eq!(access["upstream_status"], 200, "{access}");
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
    assert_eq!(
        post(&app, plain(false)).await,
        (502, "upstream_error".into())
    );
    let answer = post(&app, plain(false)).await;
    assert_eq!(answer, (503, "no_usable_account".into()));
    app.stop().await;
}

#[actix_web::test]
async fn a_body_nesting_deeper_than_the_relay_reads_is_refused_once_an_account_fails_it() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let limit = codex_relay::nesting::MAX_DEPTH;
    let answer = post(&app, nested_request(limit + 1)).await;
    assert_eq!(answer, (400, "json_nesting_too_deep".into()));
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt]);
    // At the limit the body is the upstream's to judge: two accounts fail it the same way.
    let answer = post(&app, nested_request(limit)).await;
    assert_eq!(answer, (502, "upstream_error".into()));
    assert_eq!(upstream_accounts(&app).len(), 1 + 2);
    assert_uncharged(&app, &pool);
    app.stop().await;
}
