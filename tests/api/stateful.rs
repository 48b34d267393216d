//! Stateful clients on a stateless backend: the relay remembers, per API key, the responses it
//! served, and expands `item_reference`s, `previous_response_id` and reasoning sent back without
//! its encrypted content before the request goes upstream (the mock refuses all three as the
//! backend does). A reference it does not hold is a 400 before any account is asked.

use serde_json::{json, Value};

use crate::helpers::{body, error_of, eventually, read_all, spawn_app, spawn_app_with, TestApp};

/// One turn: its response object (from the stream's `response.completed`, or the JSON answer).
pub async fn turn(app: &TestApp, key: &str, request: &Value) -> Value {
    let mut response = app.responses_as(key).send_json(request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    let bytes = read_all(&mut response).await;
    if request["stream"] == true {
        let events = crate::helpers::sse_events(&bytes);
        let completed = events.last().unwrap();
        assert_eq!(completed["type"], "response.completed");
        return completed["response"].clone();
    }
    serde_json::from_slice(&bytes).unwrap()
}

/// The ids of a response's output items, in order (reasoning, then the message).
pub fn output_ids(response: &Value) -> Vec<String> {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn reference(id: &str) -> Value {
    json!({"type": "item_reference", "id": id})
}

/// A follow-up turn whose input is `input`.
pub fn follow_up(input: Vec<Value>, stream: bool) -> Value {
    let mut request = body("gpt-5.5", "", stream);
    request["input"] = Value::Array(input);
    request
}

#[actix_web::test]
async fn item_references_are_expanded_to_the_items_the_relay_returned() {
    let app = spawn_app().await;
    for stream in [true, false] {
        let first = turn(&app, &app.key, &body("gpt-5.5", "hi", stream)).await;
        let ids = output_ids(&first);
        let input = vec![
            user("hi"),
            reference(&ids[0]),
            reference(&ids[1]),
            user("again"),
        ];
        let second = turn(&app, &app.key, &follow_up(input, !stream)).await;
        assert_eq!(second["status"], "completed");
        let sent = app.last_upstream_body();
        assert_eq!(sent["input"][1], first["output"][0], "stream: {stream}");
        assert_eq!(sent["input"][2], first["output"][1], "stream: {stream}");
        assert!(sent["input"][1]["encrypted_content"].is_string());
        assert_eq!(sent["input"][3]["content"][0]["text"], "again");
    }
    app.stop().await;
}

#[actix_web::test]
async fn reasoning_sent_back_without_its_encrypted_content_gets_it_back() {
    let app = spawn_app().await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", false)).await;
    let mut reasoning = first["output"][0].clone();
    reasoning
        .as_object_mut()
        .unwrap()
        .remove("encrypted_content");
    let input = vec![
        user("hi"),
        reasoning,
        first["output"][1].clone(),
        user("again"),
    ];
    turn(&app, &app.key, &follow_up(input, false)).await;
    assert_eq!(app.last_upstream_body()["input"][1], first["output"][0]);
    app.stop().await;
}

#[actix_web::test]
async fn previous_response_id_becomes_its_input_and_output_then_the_new_input() {
    let app = spawn_app().await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "first question", true)).await;
    let mut request = follow_up(vec![user("second question")], false);
    request["previous_response_id"] = first["id"].clone();
    let second = turn(&app, &app.key, &request).await;
    let sent = app.last_upstream_body();
    assert!(sent.get("previous_response_id").is_none());
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 4);
    assert_eq!(input[0]["content"][0]["text"], "first question");
    assert_eq!(input[1], first["output"][0]);
    assert_eq!(input[2], first["output"][1]);
    assert_eq!(input[3]["content"][0]["text"], "second question");
    // A chain: the third turn refers to the second, which holds the whole conversation.
    let mut request = follow_up(vec![user("third question")], true);
    request["previous_response_id"] = second["id"].clone();
    turn(&app, &app.key, &request).await;
    let input = app.last_upstream_body()["input"].clone();
    assert_eq!(input.as_array().unwrap().len(), 7);
    assert_eq!(input[0]["content"][0]["text"], "first question");
    assert_eq!(input[6]["content"][0]["text"], "third question");
    app.stop().await;
}

/// Sends `request` with `key`, expects a 400 naming `param` with `code`, and returns its message.
async fn refused(app: &TestApp, key: &str, request: &Value, param: &str, code: &str) -> String {
    let mut response = app.responses_as(key).send_json(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], param);
    assert_eq!(error["code"], code);
    error["message"].as_str().unwrap().to_owned()
}

/// A request that refers to a response and one that refers to an item.
fn references_to(response_id: &str, item_id: &str) -> [(Value, &'static str, &'static str); 2] {
    let mut chained = follow_up(vec![user("next")], false);
    chained["previous_response_id"] = response_id.into();
    let referring = follow_up(vec![reference(item_id), user("next")], true);
    [
        (
            chained,
            "previous_response_id",
            "previous_response_not_found",
        ),
        (referring, "input", "item_not_found"),
    ]
}

#[actix_web::test]
async fn a_reference_the_relay_does_not_hold_is_a_400_before_any_account_is_asked() {
    let app = spawn_app().await;
    for (request, param, code) in references_to("resp_never_served", "msg_never_served") {
        let message = refused(&app, &app.key, &request, param, code).await;
        assert!(message.contains("never_served"), "{message}");
        assert!(message.contains("60 minutes"), "{message}");
    }
    assert!(
        app.mock.state.responses_requests().is_empty(),
        "no account was asked"
    );
    let row = app.store.pool_row(&app.account_id).unwrap();
    assert_eq!(row.record.health, relay_actors::Health::default());
    app.stop().await;
}

#[actix_web::test]
async fn one_key_never_reaches_the_items_another_key_was_served() {
    let app = spawn_app().await;
    let other =
        codex_relay::store::keys::reveal(&app.store.create_key("other").unwrap()).to_owned();
    let known = eventually(5, || async {
        let response = app
            .responses_as(&other)
            .send_json(&body("gpt-5.5", "hi", false))
            .await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(known, "the relay never learned the second key");
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", false)).await;
    let before = app.mock.state.responses_requests().len();
    let id = first["id"].as_str().unwrap();
    for (request, param, code) in references_to(id, &output_ids(&first)[1]) {
        refused(&app, &other, &request, param, code).await;
    }
    assert_eq!(app.mock.state.responses_requests().len(), before);
    // The key that was served them still can.
    for (request, _, _) in references_to(id, &output_ids(&first)[1]) {
        turn(&app, &app.key, &request).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn with_the_memory_off_nothing_is_remembered_and_references_get_the_400() {
    let app = spawn_app_with(|s| {
        s.responses.memory.enabled = false;
        s.metrics.open = true;
    })
    .await;
    let first = turn(&app, &app.key, &body("gpt-5.5", "hi", true)).await;
    let id = first["id"].as_str().unwrap();
    for (request, param, code) in references_to(id, &output_ids(&first)[0]) {
        let message = refused(&app, &app.key, &request, param, code).await;
        assert!(
            message.contains("responses.memory.enabled is false"),
            "{message}"
        );
    }
    assert_eq!(app.mock.state.responses_requests().len(), 1);
    assert_eq!(memory_gauges(&app).await, (0, 0));
    app.stop().await;
}

/// `codex_relay_responses_memory_bytes` and `_entries` on the admin plane (`metrics.open`).
pub async fn memory_gauges(app: &TestApp) -> (u64, u64) {
    let mut response = app.admin("GET", "/metrics", "").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.body().limit(1 << 22).await.unwrap().to_vec()).unwrap();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
    };
    (
        gauge("codex_relay_responses_memory_bytes"),
        gauge("codex_relay_responses_memory_entries"),
    )
}

#[actix_web::test]
async fn every_relaxed_request_asks_for_encrypted_reasoning() {
    let app = spawn_app().await;
    let request = body("gpt-5.5", "hi", false);
    assert!(request.get("reasoning").is_none() && request.get("include").is_none());
    let answer = turn(&app, &app.key, &request).await;
    let sent = app.last_upstream_body();
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    // What comes back is what a later turn can replay: the client gets it as the upstream sent it.
    assert!(answer["output"][0]["encrypted_content"].is_string());
    app.stop().await;
}
