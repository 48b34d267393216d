//! Non-streaming `POST /v1/responses`: the relay streams upstream and assembles one Response
//! object with every field strict SDK validation requires; the request is normalized for the
//! backend in relaxed mode and forwarded as sent in strict mode.

use serde_json::{json, Value};

use crate::helpers::{body, error_of, spawn_app, spawn_app_with};
use crate::mock_upstream::Scripted;
use codex_relay::settings::CompatMode;

#[actix_web::test]
async fn a_non_stream_answer_has_every_field_strict_sdks_require() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let value: Value = response.json().limit(1 << 20).await.unwrap();
    for field in [
        "id",
        "created_at",
        "model",
        "object",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
    ] {
        assert!(!value[field].is_null(), "missing {field}: {value}");
    }
    assert_eq!(value["object"], "response");
    assert_eq!(value["status"], "completed");
    let usage = &value["usage"];
    for field in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(usage[field].is_u64(), "usage.{field}: {usage}");
    }
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["input_tokens_details"]["cache_write_tokens"].is_u64());
    assert!(usage["output_tokens_details"]["reasoning_tokens"].is_u64());
    let text: String = value["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap().iter())
        .filter(|part| part["type"] == "output_text")
        .map(|part| part["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    app.stop().await;
}

#[actix_web::test]
async fn a_tool_call_answer_is_assembled() {
    let app = spawn_app().await;
    let request = json!({
        "model": "gpt-5.5",
        "input": "please use a tool",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
    });
    let mut response = app.responses().send_json(&request).await.unwrap();
    let value: Value = response.json().limit(1 << 20).await.unwrap();
    let call = value["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .cloned();
    assert_eq!(call.expect("a function call")["name"], "get_weather");
    app.stop().await;
}

#[actix_web::test]
async fn relaxed_mode_normalizes_what_the_backend_rejects() {
    let app = spawn_app().await;
    let request = json!({
        "model": "gpt-5.5",
        "input": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}],
        "instructions": "You are helpful.",
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9,
        "reasoning": {"effort": "low"},
        "store": true,
        "custom_field": {"kept": true},
    });
    let mut response = app.responses().send_json(&request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    let sent = app.last_upstream_body();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["store"], false);
    for dropped in ["max_output_tokens", "temperature", "top_p"] {
        assert!(sent.get(dropped).is_none(), "{dropped} was forwarded");
    }
    assert_eq!(sent["input"][0]["role"], "developer");
    assert_eq!(sent["input"][0]["type"], "message");
    assert_eq!(
        sent["input"][1]["content"][0],
        json!({"type": "input_text", "text": "hi"})
    );
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(sent["instructions"], "You are helpful.");
    assert_eq!(
        sent["custom_field"],
        json!({"kept": true}),
        "unknown fields pass through"
    );
    let keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "model", "field order is kept");
    app.stop().await;
}

/// A Codex turn needs no rewriting: its conversation goes upstream as the client wrote it, byte
/// for byte (number forms, escapes and spacing a JSON re-encoding would change included); only
/// the fields the relay sets are new. Like the Codex CLI, it asks for encrypted reasoning itself.
#[actix_web::test]
async fn a_codex_turn_is_forwarded_byte_for_byte_but_for_the_fields_the_relay_sets() {
    let app = spawn_app().await;
    let input = r#"[{"type":"message","role":"user","content":[{"type":"input_text","text":"caf\u00e9 \ud83d\ude00 costs 2.50"}]},  {"type" : "reasoning", "summary":[], "encrypted_content":"gAAAA-opaque", "n": 1.0e2}]"#;
    let tools =
        r#"[{"type":"function","name":"shell","parameters":{"type":"object","properties":{}} }]"#;
    let text = format!(
        r#"{{"model":"gpt-5.5","instructions":"You are Codex.","input":{input},"tools":{tools},"stream":true,"store":false,"include":["reasoning.encrypted_content"],"prompt_cache_key":"conv-1"}}"#
    );
    let mut response = app
        .responses()
        .insert_header(("content-type", "application/json"))
        .send_body(text.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    let requests = app.mock.state.responses_requests();
    let sent = std::str::from_utf8(&requests.last().unwrap().body)
        .unwrap()
        .to_owned();
    assert!(sent.contains(&format!(r#""input":{input}"#)), "{sent}");
    assert!(sent.contains(&format!(r#""tools":{tools}"#)), "{sent}");
    assert_eq!(sent, text, "nothing to change: the body goes as sent");
    app.stop().await;
}

#[actix_web::test]
async fn a_string_input_becomes_a_message_list() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .send_json(&json!({"model": "gpt-5.5", "input": "hello there"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    let sent = app.last_upstream_body();
    assert_eq!(sent["input"][0]["content"][0]["text"], "hello there");
    app.stop().await;
}

#[actix_web::test]
async fn strict_mode_forwards_the_body_as_sent_and_relays_the_backend_reason() {
    let app = spawn_app_with(|s| s.compat.mode = CompatMode::Strict).await;
    let request = json!({"model": "gpt-5.5", "input": [], "stream": true, "max_output_tokens": 5});
    let mut response = app.responses().send_json(&request).await.unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_output_tokens"),
        "{error}"
    );
    let sent = app.last_upstream_body();
    assert_eq!(sent, request);
    app.stop().await;
}

#[actix_web::test]
async fn a_failed_response_becomes_an_error_status() {
    let app = spawn_app().await;
    app.mock.state.push_scripted(Scripted::FailedInStream {
        code: "context_length_exceeded".into(),
        message: "Your input exceeds the context window".into(),
    });
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "context_length_exceeded");
    app.stop().await;
}

#[actix_web::test]
async fn a_stream_cut_before_completion_is_a_502_for_non_stream_clients() {
    let app = spawn_app().await;
    app.mock.state.push_scripted(Scripted::CutAfterEvents(3));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    error_of(&mut response).await;
    app.stop().await;
}

#[actix_web::test]
async fn a_client_that_gives_up_on_a_non_stream_answer_closes_the_upstream() {
    let app = spawn_app().await;
    app.mock
        .state
        .set_event_delay(std::time::Duration::from_millis(200));
    let request = app.responses().send_json(&body("gpt-5.5", "hi", false));
    // The answer takes ~3 s to assemble; the client leaves after 500 ms.
    let gave_up =
        actix_web::rt::time::timeout(std::time::Duration::from_millis(500), request).await;
    assert!(gave_up.is_err());
    let closed =
        crate::helpers::eventually(5, || async { app.mock.state.streams_cancelled() == 1 }).await;
    assert!(
        closed,
        "the upstream kept streaming to a relay whose client had left"
    );
    app.stop().await;
}

#[actix_web::test]
async fn compressed_request_bodies_are_accepted() {
    use std::io::Write;
    let app = spawn_app().await;
    let plain = serde_json::to_vec(&body("gpt-5.5", "compressed hello", false)).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&plain).unwrap();
    let encodings = [
        ("gzip", gzip.finish().unwrap()),
        ("zstd", zstd::encode_all(&plain[..], 3).unwrap()),
    ];
    for (encoding, compressed) in encodings {
        let mut response = app
            .responses()
            .insert_header(("content-encoding", encoding))
            .send_body(compressed)
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{encoding}: {:?}",
            response.body().await
        );
        let sent = app.last_upstream_body();
        assert_eq!(sent["input"][0]["content"][0]["text"], "compressed hello");
        response.body().await.unwrap();
    }
    app.stop().await;
}
