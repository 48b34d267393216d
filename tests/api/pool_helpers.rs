//! A relay in front of a pool of three mock accounts (`acct-test-1` … `acct-test-3`, each
//! scriptable on its own in the mock), with short health timings. The router keeps accounts in
//! the order of their relay ids, so under `fill_first` (the pool tests' default) the first
//! account of [`spawn_pool`]'s list is the one tried first.

use codex_relay::oauth::auth_json;
use codex_relay::settings::{RoutingStrategy, Settings};
use serde_json::Value;

use crate::helpers::{body, eventually, read_all, spawn_app_with, TestApp};
use crate::mock_upstream::{fake_auth_json, Scripted};

pub const ACCOUNTS: [&str; 3] = ["acct-test-1", "acct-test-2", "acct-test-3"];

/// One account of the pool: the relay's id and the ChatGPT account id the mock scripts by.
#[derive(Debug, Clone)]
pub struct PoolAccount {
    pub id: String,
    pub chatgpt: &'static str,
}

/// A pool of three accounts; returns the app and its accounts in the router's order.
pub async fn spawn_pool(customize: impl FnOnce(&mut Settings)) -> (TestApp, Vec<PoolAccount>) {
    let app = spawn_app_with(|s| {
        s.routing.strategy = RoutingStrategy::FillFirst;
        s.routing.retry_backoff_ms = 1;
        s.routing.breaker_failure_threshold = 2;
        s.routing.breaker_backoff_initial_ms = 300;
        s.routing.breaker_backoff_max_ms = 1000;
        s.routing.probe_interval_ms = 50;
        customize(s);
    })
    .await;
    let mut pool = vec![PoolAccount {
        id: app.account_id.clone(),
        chatgpt: ACCOUNTS[0],
    }];
    let exp = chrono::Utc::now().timestamp() + 3600;
    for chatgpt in &ACCOUNTS[1..] {
        let auth = fake_auth_json(chatgpt, "pool@example.com", "plus", exp);
        let account = auth_json::parse(&auth.to_string()).expect("auth.json parses");
        let id = app.store.import_account(&account).expect("import").0;
        pool.push(PoolAccount { id, chatgpt });
    }
    pool.sort_by(|a, b| a.id.cmp(&b.id));
    assert!(
        usable_accounts_become(&app, 3).await,
        "the pool never loaded"
    );
    (app, pool)
}

/// Waits until `/healthz` reports `n` usable accounts.
pub async fn usable_accounts_become(app: &TestApp, n: u64) -> bool {
    eventually(10, || async {
        let mut r = crate::helpers::client()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["usable_accounts"] == n
    })
    .await
}

/// A 429 `usage_limit_reached` body resetting `in_secs` from now.
pub fn usage_limit(in_secs: i64) -> (Scripted, i64) {
    let resets_at = chrono::Utc::now().timestamp() + in_secs;
    let body = serde_json::json!({"error": {"type": "usage_limit_reached", "plan_type": "plus",
        "resets_at": resets_at}});
    let script = Scripted::Status {
        status: 429,
        body: body.to_string(),
        headers: vec![],
    };
    (script, resets_at)
}

pub fn server_error() -> Scripted {
    Scripted::Status {
        status: 500,
        body: "{\"detail\":\"boom\"}".into(),
        headers: vec![],
    }
}

/// One non-streaming request, answered 200.
pub async fn ok(app: &TestApp) {
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = read_all(&mut response).await;
}

/// The ChatGPT account the upstream saw for each `POST /responses`, in order.
pub fn upstream_accounts(app: &TestApp) -> Vec<String> {
    app.mock
        .state
        .responses_requests()
        .iter()
        .filter_map(|r| r.header("chatgpt-account-id").map(str::to_owned))
        .collect()
}

/// The relay's log lines with message `msg`, parsed, in the order they were written.
pub fn logged(app: &TestApp, msg: &str) -> Vec<Value> {
    app.logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["msg"] == msg)
        .collect()
}
