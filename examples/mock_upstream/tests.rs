//! The mock's own contract: what codex-relay's integration tests rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::events::{HELLO_TEXT, TOOL_RESULT_TEXT};
use super::oauth::jwt_payload;
use super::*;

async fn start() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0").await.unwrap()
}

fn access_token() -> String {
    let auth = fake_auth_json("acct-1", "dev@example.com", "plus", unix_now() + 3600);
    auth["tokens"]["access_token"].as_str().unwrap().to_owned()
}

/// A request shaped like Codex CLI 0.171's: prompt as a developer message, no `instructions`.
fn codex_body(user_text: &str) -> Value {
    json!({
        "model": "gpt-5.5",
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": user_text}]},
        ],
        "tools": [{
            "type": "function", "name": "shell_command", "strict": false,
            "parameters": {"type": "object", "properties": {}},
        }],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"effort": "medium"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199c1e6-0000-7000-8000-000000000000",
    })
}

fn responses_request(mock: &MockUpstream) -> awc::ClientRequest {
    awc::Client::default()
        .post(format!("{}/responses", mock.url()))
        .insert_header(("authorization", format!("Bearer {}", access_token())))
        .insert_header(("chatgpt-account-id", "acct-1"))
        .insert_header(("accept", "text/event-stream"))
}

async fn post_responses(mock: &MockUpstream, body: &Value) -> (StatusCode, Value, Bytes) {
    let mut resp = responses_request(mock).send_json(body).await.unwrap();
    let headers: serde_json::Map<String, Value> = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().into()))
        .collect();
    let bytes = resp.body().limit(1 << 20).await.unwrap();
    (resp.status(), Value::Object(headers), bytes)
}

/// Splits an SSE body into events, checking that each `event:` line names its `data.type`.
fn parse_sse(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "last event unterminated"
    );
    text.split_terminator("\n\n")
        .map(|block| {
            let (event_line, data_line) = block.split_once('\n').unwrap();
            let kind = event_line.strip_prefix("event: ").unwrap();
            let data: Value =
                serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], kind);
            data
        })
        .collect()
}

/// POSTs over a bare socket and returns the response head, the de-chunked body, and whether
/// the body ended with the chunked terminator.
async fn raw_post_responses(mock: &MockUpstream, body: &Value) -> (String, Vec<u8>, bool) {
    use std::io::{Read, Write};
    let (addr, token, body) = (mock.addr, access_token(), body.to_string());
    let raw = actix_rt::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        write!(
            socket,
            "POST /responses HTTP/1.1\r\nhost: mock\r\nauthorization: Bearer {token}\r\n\
             chatgpt-account-id: acct-1\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        socket.read_to_end(&mut raw).unwrap();
        raw
    })
    .await
    .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let (body, terminated) = dechunk(&raw[split + 4..]);
    (head, body, terminated)
}

fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return (body, true);
        }
        let start = line_end + 2;
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    (body, false)
}

fn assert_sequenced(events: &[Value]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i, "{event}");
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn text_stream_is_sequenced_and_ends_in_completed_with_usage() {
    let mock = start().await;
    let (status, headers, body) = post_responses(&mock, &codex_body("say hi")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(headers["x-request-id"]
        .as_str()
        .unwrap()
        .starts_with("req_"));
    assert!(headers["x-codex-turn-state"]
        .as_str()
        .unwrap()
        .starts_with("ts_"));
    assert_eq!(headers["openai-model"], "gpt-5.5");
    assert_eq!(headers["x-models-etag"], "\"mock-etag-1\"");
    assert_eq!(headers["x-codex-primary-used-percent"], "12.5");
    assert_eq!(headers["x-codex-secondary-window-minutes"], "10080");
    let reset_at: i64 = headers["x-codex-primary-reset-at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset_at > unix_now());

    let events = parse_sse(&body);
    assert_sequenced(&events);
    assert!((12..=15).contains(&events.len()), "{} events", events.len());
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[1]["type"], "response.in_progress");
    let created = &events[0]["response"];
    assert!(created["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(created["object"], "response");
    assert_eq!(created["model"], "gpt-5.5");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(created["tools"][0]["name"], "shell_command");

    let deltas: String = of_type(&events, "response.output_text.delta")
        .iter()
        .inspect(|d| assert_eq!(d["output_index"], 1))
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, HELLO_TEXT);

    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    let response = &completed["response"];
    assert_eq!(response["id"], created["id"]);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["type"], "reasoning");
    assert!(response["output"][0]["encrypted_content"]
        .as_str()
        .unwrap()
        .starts_with("enc_"));
    assert_eq!(response["output"][1]["content"][0]["text"], HELLO_TEXT);
    let usage = &response["usage"];
    for field in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(usage[field].is_u64(), "{field}");
    }
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["output_tokens_details"]["reasoning_tokens"].is_u64());
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
    assert_eq!(
        (mock.state.streams_started(), mock.state.streams_finished()),
        (1, 1)
    );
    assert_eq!(mock.state.streams_cancelled(), 0);
    mock.stop().await;
}

#[actix_rt::test]
async fn rejects_bodies_the_backend_rejects() {
    type Edit = fn(&mut Value);
    fn remove(body: &mut Value, field: &str) {
        body.as_object_mut().unwrap().remove(field);
    }
    let mock = start().await;
    let cases: [(&str, Edit, &str); 9] = [
        (
            "stream false",
            |b| b["stream"] = json!(false),
            "Stream must be set to true",
        ),
        (
            "stream absent",
            |b| remove(b, "stream"),
            "Stream must be set to true",
        ),
        (
            "store true",
            |b| b["store"] = json!(true),
            "Store must be set to false",
        ),
        (
            "max_output_tokens",
            |b| b["max_output_tokens"] = json!(100),
            "Unsupported parameter: max_output_tokens",
        ),
        (
            "temperature",
            |b| b["temperature"] = json!(0.2),
            "Unsupported parameter: temperature",
        ),
        (
            "top_p",
            |b| b["top_p"] = json!(0.9),
            "Unsupported parameter: top_p",
        ),
        (
            "string input",
            |b| b["input"] = json!("hi"),
            "Input must be a list",
        ),
        (
            "system role",
            |b| b["input"][0]["role"] = json!("system"),
            "System messages are not allowed",
        ),
        ("no model", |b| remove(b, "model"), "Model is required"),
    ];
    for (name, mutate, expected) in &cases {
        let mut body = codex_body("hi");
        mutate(&mut body);
        let (status, headers, bytes) = post_responses(&mock, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(headers["x-request-id"].is_string(), "{name}");
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer, json!({ "detail": expected }), "{name}");
    }

    let resp = responses_request(&mock)
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mock.state.streams_started(), 0);
    assert_eq!(mock.state.responses_requests().len(), cases.len() + 1);
    mock.stop().await;
}

/// A Codex body whose one tool's parameters nest `depth` levels deep in all (arrays).
fn nested_body(depth: usize) -> Value {
    // The body, `tools` and the tool are three levels of their own.
    let arrays = depth - 3;
    let nested = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
    let mut body = codex_body("hi");
    body["tools"][0]["parameters"] = serde_json::from_str(&nested).unwrap();
    body
}

#[actix_rt::test]
async fn a_body_nesting_too_deep_fails_with_a_server_error() {
    let mock = start().await;
    let (status, _, _) = post_responses(&mock, &nested_body(MAX_NESTING)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, bytes) = post_responses(&mock, &nested_body(MAX_NESTING + 1)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer, json!({ "detail": "Internal Server Error" }));
    mock.stop().await;
}

#[actix_rt::test]
async fn checks_bearer_and_account_header() {
    let mock = start().await;
    let url = format!("{}/responses", mock.url());
    let client = awc::Client::default();
    let body = codex_body("hi");

    let mut no_auth = client.post(&url).send_json(&body).await.unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    let answer: Value = no_auth.json().await.unwrap();
    assert_eq!(answer, json!({"detail": "Unauthorized"}));

    let not_jwt = client
        .post(&url)
        .insert_header(("authorization", "Bearer not-a-jwt"))
        .insert_header(("chatgpt-account-id", "acct-1"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(not_jwt.status(), StatusCode::UNAUTHORIZED);

    let mut no_account = client
        .post(&url)
        .insert_header(("authorization", format!("Bearer {}", access_token())))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(no_account.status(), StatusCode::BAD_REQUEST);
    let answer: Value = no_account.json().await.unwrap();
    assert_eq!(answer, json!({"detail": "Missing ChatGPT-Account-ID"}));

    let recorded = mock.state.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        recorded[2]
            .header("Authorization")
            .map(|a| a.starts_with("Bearer ")),
        Some(true)
    );
    assert_eq!(recorded[2].json().unwrap()["model"], "gpt-5.5");
    mock.stop().await;
}

#[actix_rt::test]
async fn answers_with_a_function_call_then_with_text_after_the_tool_result() {
    let mock = start().await;
    let (status, _, body) = post_responses(&mock, &codex_body("Please USE A TOOL now")).await;
    assert_eq!(status, StatusCode::OK);
    let events = parse_sse(&body);
    assert_sequenced(&events);
    assert!(of_type(&events, "response.output_text.delta").is_empty());
    let args = of_type(&events, "response.function_call_arguments.done");
    assert_eq!(args.len(), 1);
    assert_eq!(args[0]["arguments"], "{}");
    assert_eq!(
        of_type(&events, "response.function_call_arguments.delta").len(),
        1
    );
    let call = &of_type(&events, "response.output_item.done")[1]["item"];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "shell_command");
    assert_eq!(call["arguments"], "{}");
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    let completed = events.last().unwrap();
    assert_eq!(completed["response"]["output"][1], *call);

    let mut follow_up = codex_body("Please use a tool now");
    let input = follow_up["input"].as_array_mut().unwrap();
    input.push(call.clone());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}));
    let (_, _, body) = post_responses(&mock, &follow_up).await;
    let events = parse_sse(&body);
    let text = &events.last().unwrap()["response"]["output"][1]["content"][0]["text"];
    assert_eq!(text, TOOL_RESULT_TEXT);
    mock.stop().await;
}

#[actix_rt::test]
async fn scripted_answers_are_used_in_order() {
    let mock = start().await;
    let limit =
        r#"{"error":{"type":"usage_limit_reached","plan_type":"plus","resets_at":1704067242}}"#;
    mock.state.push_scripted(Scripted::Status {
        status: 429,
        body: limit.into(),
        headers: vec![("x-codex-primary-used-percent".into(), "100.0".into())],
    });
    mock.state.push_scripted(Scripted::FailedInStream {
        code: "server_is_overloaded".into(),
        message: "Selected model is at capacity.".into(),
    });
    mock.state.push_scripted(Scripted::CutAfterEvents(3));

    let (status, headers, body) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-codex-primary-used-percent"], "100.0");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, limit.as_bytes());

    let (status, _, body) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::OK);
    let events = parse_sse(&body);
    let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["response.created", "response.failed"]);
    assert_eq!(
        events[1]["response"]["error"]["code"],
        "server_is_overloaded"
    );
    assert_eq!(events[1]["response"]["status"], "failed");

    // The cut: the events arrive, then the connection closes without the chunked terminator
    // (read raw, because awc takes a close at a chunk boundary for a clean end).
    let (head, body, terminated) = raw_post_responses(&mock, &codex_body("hi")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!terminated, "a cut stream must not end cleanly");
    let events = parse_sse(&body);
    assert_eq!(events.len(), 3);
    assert_sequenced(&events);
    assert_eq!(
        mock.state.streams_finished(),
        2,
        "a delivered cut counts as finished"
    );

    let (status, _, _) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::OK, "the queue is empty again");
    assert_eq!(mock.state.streams_started(), 3);
    mock.stop().await;
}

#[actix_rt::test]
async fn counts_a_stream_the_client_drops_as_cancelled() {
    let mock = start().await;
    mock.state.set_event_delay(Duration::from_millis(100));
    let mut resp = responses_request(&mock)
        .send_json(&codex_body("hi"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let first = resp.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: response.created\n"));
    let dropped_at = Instant::now();
    drop(resp);

    wait_until("the cancellation", || mock.state.streams_cancelled() == 1).await;
    assert_eq!(mock.state.streams_finished(), 0);
    assert!(mock.state.last_cancelled_at().unwrap() >= dropped_at);
    mock.stop().await;
}

#[path = "tests_oauth.rs"]
mod oauth_and_catalog;

#[path = "tests_accounts.rs"]
mod accounts;
#[path = "tests_login.rs"]
mod login_side;
#[path = "tests_bench.rs"]
mod tests_bench;
#[path = "tests_models.rs"]
mod tests_models;
#[path = "tests_stateless.rs"]
mod tests_stateless;
#[path = "tests_websocket.rs"]
mod tests_websocket;
