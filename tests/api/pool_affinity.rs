//! Conversation affinity: one conversation, one account — across a round-robin pool.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{body, read_all};
use crate::pool_helpers::{spawn_pool, usage_limit};

fn with_cache_key(key: &str, stream: bool) -> Value {
    let mut request = body("gpt-5.5", "hi", stream);
    request["prompt_cache_key"] = key.into();
    request
}

/// The account the upstream saw for each request whose body carried `key`.
fn accounts_for(app: &crate::helpers::TestApp, key: &str) -> Vec<String> {
    app.mock
        .state
        .responses_requests()
        .iter()
        .filter(|r| r.json().is_some_and(|b| b["prompt_cache_key"] == key))
        .filter_map(|r| r.header("chatgpt-account-id").map(str::to_owned))
        .collect()
}

async fn send(app: &crate::helpers::TestApp, request: &Value) -> u16 {
    let mut response = app.responses().send_json(request).await.unwrap();
    let _ = read_all(&mut response).await;
    response.status().as_u16()
}

#[actix_web::test]
async fn the_same_prompt_cache_key_always_lands_on_one_account() {
    let (app, _) = spawn_pool(|s| {
        s.routing.strategy = codex_relay::settings::RoutingStrategy::RoundRobin;
    })
    .await;
    for n in 0..12 {
        assert_eq!(send(&app, &with_cache_key("conv-a", n % 2 == 0)).await, 200);
        assert_eq!(send(&app, &body("gpt-5.5", "no key", false)).await, 200);
    }
    let conv: HashSet<String> = accounts_for(&app, "conv-a").into_iter().collect();
    assert_eq!(conv.len(), 1, "one conversation, one account: {conv:?}");
    // Without a key the same pool rotates.
    let all: HashSet<String> = crate::pool_helpers::upstream_accounts(&app)
        .into_iter()
        .collect();
    assert_eq!(all.len(), 3);
    app.stop().await;
}

#[actix_web::test]
async fn a_conversation_moves_only_when_its_account_cannot_serve_and_does_not_move_back() {
    let (app, _) = spawn_pool(|s| {
        s.routing.strategy = codex_relay::settings::RoutingStrategy::RoundRobin;
    })
    .await;
    let session = |text: &str| {
        app.responses()
            .insert_header(("session_id", "sess-1"))
            .send_json(&body("gpt-5.5", text, false))
    };
    let mut first = session("one").await.unwrap();
    let _ = read_all(&mut first).await;
    let home = crate::pool_helpers::upstream_accounts(&app)[0].clone();
    let (capped, _) = usage_limit(2);
    app.mock.state.push_scripted_for(&home, capped);
    let mut second = session("two").await.unwrap();
    assert_eq!(second.status(), 200);
    let _ = read_all(&mut second).await;
    let seen = crate::pool_helpers::upstream_accounts(&app);
    let new_home = seen.last().unwrap().clone();
    assert_ne!(new_home, home);
    assert!(app.logs().contains("conversation moved to another account"));
    // The old account recovers after its reset; the conversation stays where it went.
    assert!(crate::pool_helpers::usable_accounts_become(&app, 3).await);
    for _ in 0..3 {
        let mut next = session("again").await.unwrap();
        let _ = read_all(&mut next).await;
    }
    let seen = crate::pool_helpers::upstream_accounts(&app);
    assert!(
        seen[seen.len() - 3..].iter().all(|a| *a == new_home),
        "{seen:?}"
    );
    app.stop().await;
}
