//! Encrypted reasoning is readable only by the account that wrote it (another account answers
//! 400 `invalid_encrypted_content`): a moved conversation that another account cannot read ends
//! with an explained 400, not a bare pass-through and not a round of futile failovers.

use serde_json::{json, Value};

use crate::helpers::body;
use crate::mock_upstream::Scripted;
use crate::pool_helpers::{spawn_pool, upstream_accounts, usage_limit};

/// A conversation turn keyed by `key` that replays one encrypted reasoning item.
fn replaying(key: &str) -> Value {
    let mut request = body("gpt-5.5", "and then?", false);
    request["prompt_cache_key"] = key.into();
    let reasoning = json!({"type": "reasoning", "summary": [], "encrypted_content": "enc_abc"});
    request["input"]
        .as_array_mut()
        .expect("input")
        .insert(0, reasoning);
    request
}

fn unreadable() -> Scripted {
    let body = json!({"error": {"message": "The encrypted content for item rs_1 could not be verified.",
        "type": "invalid_request_error", "param": null, "code": "invalid_encrypted_content"}});
    Scripted::Status {
        status: 400,
        body: body.to_string(),
        headers: vec![],
    }
}

#[actix_web::test]
async fn a_moved_conversation_whose_reasoning_another_account_cannot_read_is_explained() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let mut first = app
        .responses()
        .send_json(&replaying("conv-enc"))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let _ = first.body().await;
    // Its account runs out of quota; the next account cannot read the conversation's reasoning.
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, usage_limit(600).0);
    app.mock
        .state
        .push_scripted_for(pool[1].chatgpt, unreadable());
    let mut response = app
        .responses()
        .send_json(&replaying("conv-enc"))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let error = &error["error"];
    assert_eq!(error["code"], "invalid_encrypted_content");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "input");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("only the relay account which wrote it"),
        "{message}"
    );
    assert!(message.contains("moved it to another account"), "{message}");
    // Not failed over further: the third account was never asked.
    assert_eq!(
        upstream_accounts(&app),
        [pool[0].chatgpt, pool[0].chatgpt, pool[1].chatgpt]
    );
    let logs = app.logs();
    assert!(logs.contains("encrypted reasoning unreadable on this account"));
    assert!(logs.contains(&pool[0].id) && logs.contains(&pool[1].id));
    assert!(
        !logs.contains("enc_abc"),
        "encrypted content leaked into the logs"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_request_without_encrypted_items_keeps_the_upstreams_error() {
    let (app, pool) = spawn_pool(|_| {}).await;
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, unreadable());
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_encrypted_content");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be verified"), "{message}");
    app.stop().await;
}
