//! The response memory stays within its bounds: past its byte budget it forgets the oldest
//! responses (and does not grow), and a response older than its ttl cannot be referenced; and
//! a conversation rebuilt from memory goes back to the account that wrote its encrypted
//! reasoning, with the explained 400 when it had to move. A reload turns it off and on at once.

use std::time::Duration;

use codex_relay::settings::RoutingStrategy;
use serde_json::json;

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::{admin_call, body, error_of, spawn_app_with};
use crate::pool_helpers::{spawn_pool, upstream_accounts, usage_limit};
use crate::reload::write_settings;
use crate::stateful::{follow_up, memory_gauges, output_ids, turn};

#[actix_web::test]
async fn past_its_budget_the_memory_forgets_the_oldest_and_does_not_grow() {
    const BUDGET: u64 = 1 << 20;
    let app = spawn_app_with(|s| {
        s.responses.memory.max_bytes = BUDGET as usize;
        s.metrics.open = true;
    })
    .await;
    let mut ids = Vec::new();
    let big = "x".repeat(150_000);
    for n in 0..20 {
        let answer = turn(
            &app,
            &app.key,
            &body("gpt-5.5", &format!("{n} {big}"), n % 2 == 0),
        )
        .await;
        ids.push(answer["id"].as_str().unwrap().to_owned());
        let (bytes, _) = memory_gauges(&app).await;
        assert!(
            bytes <= BUDGET,
            "{bytes} bytes held after {} responses",
            n + 1
        );
    }
    let (bytes, entries) = memory_gauges(&app).await;
    assert!(bytes > BUDGET / 2, "{bytes}");
    assert!((5..=7).contains(&entries), "{entries} responses held");
    let chained = |id: &str| {
        let mut request = follow_up(vec![], false);
        request["previous_response_id"] = id.into();
        request
    };
    let mut oldest = app.responses().send_json(&chained(&ids[0])).await.unwrap();
    assert_eq!(oldest.status(), 400);
    assert_eq!(
        error_of(&mut oldest).await["code"],
        "previous_response_not_found"
    );
    turn(&app, &app.key, &chained(&ids[19])).await;
    app.stop().await;
}

#[actix_web::test]
async fn a_response_older_than_the_ttl_cannot_be_referenced() {
    let app = spawn_app_with(|s| s.responses.memory.ttl_mins = 1).await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", false)).await;
    let mut request = follow_up(
        vec![json!({"type": "item_reference", "id": output_ids(&first)[1]})],
        false,
    );
    turn(&app, &app.key, &request).await;
    actix_web::rt::time::sleep(Duration::from_secs(61)).await;
    request["stream"] = true.into();
    let mut response = app.responses().send_json(&request).await.unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "item_not_found");
    assert!(error["message"].as_str().unwrap().contains("1 minutes"));
    app.stop().await;
}

#[actix_web::test]
async fn a_conversation_rebuilt_from_memory_stays_on_the_account_that_wrote_its_reasoning() {
    let (app, pool) = spawn_pool(|s| s.routing.strategy = RoutingStrategy::RoundRobin).await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", false)).await;
    let writer = upstream_accounts(&app)[0].clone();
    let mut last = first;
    // Without a conversation key, round robin would spread these over the three accounts; the
    // mock refuses reasoning another account wrote.
    for _ in 0..4 {
        let ids = output_ids(&last);
        let request = follow_up(vec![json!({"type": "item_reference", "id": ids[0]})], false);
        last = turn(&app, &app.key, &request).await;
        assert_eq!(upstream_accounts(&app).last(), Some(&writer));
    }
    // The writer runs out of quota: the conversation has to move, and the account it moves to
    // cannot read its reasoning. The client is told why, not the upstream's bare error.
    let writer_pool = pool.iter().find(|a| a.chatgpt == writer).unwrap();
    app.mock
        .state
        .push_scripted_for(writer_pool.chatgpt, usage_limit(600).0);
    let request = follow_up(
        vec![json!({"type": "item_reference", "id": output_ids(&last)[0]})],
        true,
    );
    let mut response = app.responses().send_json(&request).await.unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "invalid_encrypted_content");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("moved it to another account"), "{message}");
    app.stop().await;
}

#[actix_web::test]
async fn reasoning_replayed_with_its_content_and_no_conversation_key_goes_back_to_its_writer() {
    let (app, _pool) = spawn_pool(|s| s.routing.strategy = RoutingStrategy::RoundRobin).await;
    let mut request = body("gpt-5.5", "hi", false);
    request["include"] = json!(["reasoning.encrypted_content"]);
    let first = turn(&app, &app.key, &request).await;
    let writer = upstream_accounts(&app)[0].clone();
    let mut input = request["input"].as_array().unwrap().clone();
    let mut last = first;
    // The client keeps the conversation itself, reasoning and its content included, and sends
    // no conversation key: round robin alone would spread the turns over the three accounts,
    // and the mock refuses reasoning another account wrote.
    for turn_number in 0..4 {
        assert!(last["output"][0]["encrypted_content"].is_string());
        input.extend(last["output"].as_array().unwrap().iter().cloned());
        input.push(json!({"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": format!("turn {turn_number}")}]}));
        let mut next = follow_up(input.clone(), turn_number % 2 == 0);
        next["include"] = request["include"].clone();
        last = turn(&app, &app.key, &next).await;
        assert_eq!(upstream_accounts(&app).last(), Some(&writer));
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_reload_turns_the_memory_off_and_on_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    let source = codex_relay::settings::SettingsSource::file(&file);
    let app = spawn_app_with(|s| s.source = source).await;
    let write = app.admin_token(AdminScope::Write).await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", false)).await;
    let mut chained = follow_up(vec![], false);
    chained["previous_response_id"] = first["id"].clone();
    for (enabled, status) in [(false, 400), (true, 200)] {
        let memory = format!("[responses.memory]\nenabled = {enabled}\n");
        write_settings(&file, &app, &memory);
        let (code, answer) = admin_call(&app, "POST", "/admin/v1/reload", &write, None).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["applied"], json!(["responses.memory"]));
        let mut response = app.responses().send_json(&chained).await.unwrap();
        assert_eq!(response.status(), status, "enabled = {enabled}");
        let _ = response.body().await;
    }
    app.stop().await;
}
