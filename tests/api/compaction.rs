//! Remote compaction: the Codex CLI's streamed compaction (input ending with a
//! `compaction_trigger` item) passes through with its one `compaction` item, and
//! `POST /v1/responses/compact` bridges SDK callers to it and answers in the compact shape.

use serde_json::{json, Value};

use crate::helpers::{client, error_of, spawn_app, TestApp};

fn compact(app: &TestApp) -> awc::ClientRequest {
    client()
        .post(app.url("/v1/responses/compact"))
        .bearer_auth(&app.key)
}

fn conversation() -> Value {
    json!([
        {"role": "user", "content": [{"type": "input_text", "text": "first question"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "an answer"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second question"}]},
    ])
}

#[actix_web::test]
async fn a_streamed_compaction_passes_through_with_its_one_compaction_item() {
    let app = spawn_app().await;
    let mut input = conversation();
    input
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "compaction_trigger"}));
    let events = app
        .stream_events(&json!({"model": "gpt-5.5", "input": input, "stream": true}))
        .await;
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["item"]["type"], "compaction");
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    let output = completed["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert!(output[0]["id"].as_str().unwrap().starts_with("cmp_"));
    app.stop().await;
}

#[actix_web::test]
async fn the_compact_endpoint_answers_the_compacted_conversation() {
    let app = spawn_app().await;
    let mut response = compact(&app)
        .send_json(
            &json!({"model": "gpt-5.5", "input": conversation(), "instructions": "Be brief."}),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response.compaction");
    assert!(answer["id"].as_str().unwrap().starts_with("resp_"));
    assert!(answer["created_at"].is_i64());
    let output = answer["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "{answer}");
    assert_eq!(output[0]["content"][0]["text"], "first question");
    assert_eq!(output[1]["content"][0]["text"], "second question");
    assert_eq!(output[2]["type"], "compaction");
    assert!(output[2]["encrypted_content"].is_string());
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // Upstream, it was an ordinary streamed call whose input ends with the trigger.
    let sent = app.last_upstream_body();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["store"], false);
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 4);
    assert_eq!(input[3], json!({"type": "compaction_trigger"}));
    app.stop().await;
}

#[actix_web::test]
async fn the_compact_endpoint_needs_an_input() {
    let app = spawn_app().await;
    let mut response = compact(&app)
        .send_json(&json!({"model": "gpt-5.5"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["param"], "input");
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn a_turn_carrying_the_compaction_item_is_answered() {
    let app = spawn_app().await;
    let compact_events = app
        .stream_events(&json!({"model": "gpt-5.5", "stream": true, "input": [
            {"role": "user", "content": "please use a tool"},
            {"type": "compaction_trigger"},
        ]}))
        .await;
    let item = compact_events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"].clone())
        .unwrap();
    let events = app
        .stream_events(&json!({"model": "gpt-5.5", "stream": true, "input": [
            {"role": "user", "content": "please use a tool"},
            item,
        ]}))
        .await;
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    let text = &completed["response"]["output"][1]["content"][0]["text"];
    assert_eq!(text, "Carrying on after compaction.");
    // The compaction item reached the upstream as the client sent it.
    assert_eq!(app.last_upstream_body()["input"][1]["type"], "compaction");
    app.stop().await;
}
