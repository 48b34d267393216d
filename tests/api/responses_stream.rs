//! Streaming `POST /v1/responses`: bytes pass through as the upstream sent them, in order; the
//! client's disconnect closes the upstream at once; failures after the first byte end cleanly.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::helpers::{body, read_all, spawn_app};
use crate::mock_upstream::Scripted;

#[actix_web::test]
async fn stream_bytes_arrive_unaltered_and_in_order() {
    let app = spawn_app().await;
    // Odd chunking on purpose: events split across chunks and several events in one chunk.
    let upstream: Vec<Bytes> = vec![
        Bytes::from_static(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_raw\"}}\n\nevent: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"seq"),
        Bytes::from_static(b"uence_number\":1,\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"m1\",\"role\":\"assistant\",\"content\":[]}}\n\n"),
        Bytes::from_static("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"h\u{e9}llo \u{1f600}\"}\n\n".as_bytes()),
        Bytes::from_static(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_raw\",\"usage\":{\"input_tokens\":1,\"input_tokens_details\":{\"cached_tokens\":0,\"cache_write_tokens\":0},\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":3}}}\n\n"),
    ];
    app.mock
        .state
        .push_scripted(Scripted::Raw(upstream.clone()));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let received = read_all(&mut response).await;
    assert_eq!(received, upstream.concat());
    app.stop().await;
}

#[actix_web::test]
async fn a_final_usage_missing_fields_strict_clients_require_is_completed() {
    let app = spawn_app().await;
    // The mock, like the backend, reports `input_tokens_details` without `cache_write_tokens`.
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let usage = &events.last().unwrap()["response"]["usage"];
    assert_eq!(
        usage["input_tokens_details"]["cache_write_tokens"], 0,
        "{usage}"
    );
    assert!(
        usage["input_tokens"].as_u64().unwrap() > 0,
        "the upstream's counts are kept"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_mock_answer_streams_in_the_shape_clients_accept() {
    let app = spawn_app().await;
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    assert_eq!(events.first().unwrap()["type"], "response.created");
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let sequence: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    app.stop().await;
}

#[actix_web::test]
async fn events_are_forwarded_as_they_arrive() {
    let app = spawn_app().await;
    app.mock.state.set_event_delay(Duration::from_millis(300));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    let first = response.next().await.unwrap().unwrap();
    // The first event reached the client while the upstream was still producing the rest.
    assert!(std::str::from_utf8(&first)
        .unwrap()
        .contains("response.created"));
    assert_eq!(app.mock.state.streams_finished(), 0);
    drop(response);
    app.stop().await;
}

#[actix_web::test]
async fn a_client_disconnect_closes_the_upstream_within_a_second() {
    let app = spawn_app().await;
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    response.next().await.unwrap().unwrap();
    assert_eq!(app.mock.state.streams_cancelled(), 0);
    let dropped_at = Instant::now();
    drop(response);
    let closed =
        crate::helpers::eventually(5, || async { app.mock.state.streams_cancelled() == 1 }).await;
    assert!(closed, "the upstream stream was not closed");
    let at = app.mock.state.last_cancelled_at().unwrap();
    assert!(
        at.duration_since(dropped_at) < Duration::from_secs(1),
        "{:?}",
        at.duration_since(dropped_at)
    );
    assert_eq!(app.mock.state.streams_finished(), 0);
    // The account's slot was returned: the next request is served.
    let mut again = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "{:?}", again.body().await);
    app.stop().await;
}

#[actix_web::test]
async fn a_cut_after_the_first_byte_ends_with_response_failed() {
    let app = spawn_app().await;
    app.mock.state.push_scripted(Scripted::CutAfterEvents(4));
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    assert_eq!(events.len(), 5, "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["id"], events[0]["response"]["id"]);
    assert_eq!(
        last["sequence_number"].as_u64(),
        Some(events[3]["sequence_number"].as_u64().unwrap() + 1)
    );
    assert!(
        last.get("error").is_none(),
        "a top-level error key makes SDKs raise"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_upstream_failure_event_is_passed_through() {
    let app = spawn_app().await;
    app.mock.state.push_scripted(Scripted::FailedInStream {
        code: "context_length_exceeded".into(),
        message: "too long".into(),
    });
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "context_length_exceeded");
    app.stop().await;
}

#[actix_web::test]
async fn streaming_is_decided_by_the_body_not_by_accept() {
    let app = spawn_app().await;
    // The OpenAI SDKs send `accept: application/json` even when streaming.
    let mut response = app
        .responses()
        .insert_header(("accept", "application/json"))
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    read_all(&mut response).await;
    app.stop().await;
}

/// One access line per request: a stream's is written when it ends, with what it carried.
#[actix_web::test]
async fn a_stream_is_logged_once_when_it_ends_with_what_it_carried() {
    let app = spawn_app().await;
    let mut response = app
        .responses()
        .insert_header(("x-request-id", "req-one-line"))
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    let received = read_all(&mut response).await;
    let lines = |app: &crate::helpers::TestApp| -> Vec<serde_json::Value> {
        app.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["request_id"] == "req-one-line")
            .collect()
    };
    assert!(crate::helpers::eventually(5, || async { !lines(&app).is_empty() }).await);
    let lines = lines(&app);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["msg"], "request");
    assert_eq!(line["stream"], true);
    assert_eq!(line["status"], 200);
    assert_eq!(line["how"], "completed");
    // The upstream's bytes; the client got as many, or a few more where a usage was completed.
    let upstream_bytes = line["bytes"].as_u64().unwrap();
    assert!(upstream_bytes > 0 && upstream_bytes <= received.len() as u64);
    assert!(line["events"].as_u64().unwrap() > 3);
    assert!(line["output_tokens"].as_u64().unwrap() > 0);
    assert!(line["key_id"].is_string() && line["account_id"].is_string());
    app.stop().await;
}
