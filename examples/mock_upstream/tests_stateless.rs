//! The mock's own tests of what the backend refuses because it stores nothing: references to
//! items and responses, reasoning without its encrypted content, and another account's
//! encrypted reasoning; and `encrypted_content` only when `include` asks for it.

use super::*;

fn with_input_item(item: Value) -> Value {
    let mut body = codex_body("hi");
    body["input"].as_array_mut().unwrap().push(item);
    body
}

fn error_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[actix_rt::test]
async fn an_item_reference_is_not_found_as_on_the_backend() {
    let mock = start().await;
    let body = with_input_item(json!({"type": "item_reference", "id": "rs_123"}));
    let (status, _, bytes) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = &error_of(&bytes)["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "input");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with(
        "Item with id 'rs_123' not found. Items are not persisted when `store` is set to false."
    ));
    mock.stop().await;
}

#[actix_rt::test]
async fn reasoning_without_encrypted_content_is_not_found_either() {
    let mock = start().await;
    let body = with_input_item(json!({"type": "reasoning", "id": "rs_9", "summary": []}));
    let (status, _, bytes) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&bytes)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'rs_9' not found"));
    mock.stop().await;
}

#[actix_rt::test]
async fn previous_response_id_is_an_unsupported_parameter() {
    let mock = start().await;
    let mut body = codex_body("hi");
    body["previous_response_id"] = json!("resp_1");
    let (status, _, bytes) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&bytes)["detail"],
        "Unsupported parameter: previous_response_id"
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn encrypted_reasoning_comes_only_when_asked_and_only_its_account_reads_it() {
    let mock = start().await;
    let mut body = codex_body("hi");
    body.as_object_mut().unwrap().remove("include");
    let (_, _, bytes) = post_responses(&mock, &body).await;
    let completed = parse_sse(&bytes).pop().unwrap();
    assert!(completed["response"]["output"][0]
        .get("encrypted_content")
        .is_none());

    let (_, _, bytes) = post_responses(&mock, &codex_body("hi")).await;
    let reasoning = parse_sse(&bytes).pop().unwrap()["response"]["output"][0].clone();
    assert!(reasoning["encrypted_content"].is_string());
    let replay = with_input_item(reasoning);
    let (status, _, _) = post_responses(&mock, &replay).await;
    assert_eq!(status, StatusCode::OK, "the writing account reads it");
    let mut resp = awc::Client::default()
        .post(format!("{}/responses", mock.url()))
        .insert_header(("authorization", format!("Bearer {}", access_token())))
        .insert_header(("chatgpt-account-id", "acct-2"))
        .send_json(&replay)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_encrypted_content");
    mock.stop().await;
}

#[actix_rt::test]
async fn an_account_with_a_standing_answer_gives_it_before_reading_the_conversation() {
    let mock = start().await;
    let (_, _, bytes) = post_responses(&mock, &codex_body("hi")).await;
    let reasoning = parse_sse(&bytes).pop().unwrap()["response"]["output"][0].clone();
    let replay = with_input_item(reasoning);
    mock.state.set_standing_for(
        "acct-2",
        Some(Scripted::FailedInStream {
            code: "server_is_overloaded".into(),
            message: "Our servers are currently overloaded.".into(),
        }),
    );
    let mut resp = awc::Client::default()
        .post(format!("{}/responses", mock.url()))
        .insert_header(("authorization", format!("Bearer {}", access_token())))
        .insert_header(("chatgpt-account-id", "acct-2"))
        .send_json(&replay)
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the overload, not the reasoning"
    );
    let events = parse_sse(&resp.body().await.unwrap());
    let failed = events.last().unwrap();
    assert_eq!(failed["response"]["error"]["code"], "server_is_overloaded");
    mock.stop().await;
}
