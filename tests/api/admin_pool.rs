//! The pool on the admin plane: each account's health and quota in its view, routing parameters
//! set by an operator, and the pool's counters.

use std::cell::RefCell;
use std::path::PathBuf;

use codex_relay::oauth::auth_json;
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::MasterKey;
use serde_json::{json, Value};

use crate::helpers::{body, error_of, read_all, spawn_app_seeded, TestApp};
use crate::mock_upstream::fake_auth_json;
use crate::pool_helpers::{ok, spawn_pool, upstream_accounts, usage_limit};
use crate::store_cli::spoil_tokens;

async fn view(app: &TestApp, id: &str, token: &str) -> Value {
    admin_get(app, &format!("/admin/v1/accounts/{id}"), token).await
}

/// The JSON of an admin `GET` answered 200.
async fn admin_get(app: &TestApp, path: &str, token: &str) -> Value {
    let mut response = app.admin("GET", path, token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn account_views_show_cooldowns_and_quota_and_the_pool_counts_moves() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let read = app.admin_token(AdminScope::Read).await;
    app.mock
        .state
        .set_used_percent_for(pool[1].chatgpt, 70.0, 10.0);
    let (capped, resets_at) = usage_limit(600);
    app.mock.state.push_scripted_for(pool[0].chatgpt, capped);
    let mut response = app
        .responses()
        .insert_header(("session_id", "conv-admin"))
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = read_all(&mut response).await;

    let cooling = view(&app, &pool[0].id, &read).await;
    assert_eq!(cooling["state"], "cooling");
    let health = &cooling["pool"]["health"];
    assert_eq!(health["status"], "cooling");
    assert_eq!(health["cooling_reason"], "usage_limit");
    let until = chrono::DateTime::parse_from_rfc3339(health["cooling_until"].as_str().unwrap());
    assert_eq!(until.unwrap().timestamp(), resets_at);
    let serving = view(&app, &pool[1].id, &read).await;
    assert_eq!(serving["state"], "active");
    assert_eq!(serving["pool"]["quota"]["remaining_percent"], 30.0);
    assert_eq!(serving["pool"]["quota"]["primary"]["used_percent"], 70.0);

    let counts = admin_get(&app, "/admin/v1/pool", &read).await;
    assert_eq!(counts["accounts"], 3);
    assert_eq!(counts["usable_accounts"], 2);
    assert_eq!(counts["conversations"], 1);
    assert_eq!(
        counts["affinity_moves"], 1,
        "the conversation left its capped account"
    );
    app.stop().await;
}

#[actix_web::test]
async fn operators_set_routing_parameters_with_the_write_scope() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let read = app.admin_token(AdminScope::Read).await;
    let write = app.admin_token(AdminScope::Write).await;
    let path = format!("/admin/v1/accounts/{}/routing", pool[2].id);
    let set = |token: &str, body: Value| app.admin("POST", &path, token).send_json(&body);

    let mut response = set(&read, json!({"priority": 1})).await.unwrap();
    assert_eq!(response.status(), 403);
    error_of(&mut response).await;
    for (bad, param) in [
        (json!({"weight": 0}), Some("weight")),
        (json!({"weight": 1001}), Some("weight")),
        (json!({"weight": 4_294_967_296_u64}), Some("weight")),
        (json!({"priority": -1001}), Some("priority")),
        (json!({"priority": 2_147_483_648_u64}), Some("priority")),
        (json!({"max_in_flight": 100_001}), Some("max_in_flight")),
        (json!({"max_in_flight": -1}), Some("max_in_flight")),
        (json!({"speed": 3}), None),
        (json!({}), None),
        (json!({"priority": "high"}), None),
    ] {
        let mut response = set(&write, bad.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            error_of(&mut response).await["param"],
            json!(param),
            "{bad}"
        );
    }
    let mut response = app
        .admin("POST", "/admin/v1/accounts/no-such/routing", &write)
        .send_json(&json!({"weight": 2}))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    error_of(&mut response).await;

    let mut response = set(
        &write,
        json!({"priority": 7, "weight": 2, "max_in_flight": 3}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    let routing = &changed["pool"]["routing"];
    assert_eq!(
        (
            routing["priority"].clone(),
            routing["weight"].clone(),
            routing["max_in_flight"].clone()
        ),
        (json!(7), json!(2), json!(3))
    );
    assert_eq!(changed["pool"]["max_in_flight"], 3);
    // The highest priority now takes the traffic (the pool is fill-first by id otherwise).
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let _ = read_all(&mut response).await;
    let last = app.mock.state.responses_requests().pop().unwrap();
    assert_eq!(last.header("chatgpt-account-id"), Some(pool[2].chatgpt));
    let mut response = set(&write, json!({"max_in_flight": null})).await.unwrap();
    let reset: Value = response.json().await.unwrap();
    assert!(reset["pool"]["routing"]["max_in_flight"].is_null());
    assert_eq!(reset["pool"]["routing"]["priority"], 7);
    app.stop().await;
}

#[actix_web::test]
async fn an_account_whose_tokens_do_not_open_is_shown_unreadable_and_never_routed_to() {
    let db = RefCell::new(PathBuf::new());
    let app = spawn_app_seeded(
        |s| *db.borrow_mut() = s.store.path.clone(),
        |store| {
            let exp = chrono::Utc::now().timestamp() + 3600;
            let auth = fake_auth_json("acct-foreign", "f@example.com", "plus", exp);
            let account = auth_json::parse(&auth.to_string()).unwrap();
            let (id, _) = store.import_account(&account).unwrap();
            spoil_tokens(&db.borrow(), &id, Some(&MasterKey::generate()));
            vec![id]
        },
    )
    .await;
    let foreign = app.seeded[0].clone();
    let read = app.admin_token(AdminScope::Read).await;
    let (ours, theirs) = (
        view(&app, &app.account_id, &read).await,
        view(&app, &foreign, &read).await,
    );
    assert_eq!(ours["state"], "active");
    assert_eq!(theirs["state"], "unreadable");
    let reason = theirs["reason"].as_str().unwrap();
    assert!(reason.contains("sealed with master key"), "{reason}");
    let listed = admin_get(&app, "/admin/v1/accounts", &read).await;
    let data = listed["data"].as_array().unwrap();
    assert!(data.iter().any(|a| a["state"] == "unreadable"), "{listed}");
    let counts = admin_get(&app, "/admin/v1/pool", &read).await;
    assert_eq!(
        counts["accounts"], 1,
        "only the readable account is in the pool"
    );
    for _ in 0..4 {
        ok(&app).await;
    }
    assert!(upstream_accounts(&app).iter().all(|a| a == "acct-test-1"));
    app.stop().await;
}
