//! SSE keep-alive comments during upstream silence, only between whole events.

use std::time::Duration;

use crate::helpers::{body, read_all, spawn_app_with, sse_events};

#[actix_web::test]
async fn a_silent_upstream_gets_keep_alive_comments_between_whole_events() {
    let app = spawn_app_with(|s| s.server.sse_keepalive_ms = 40).await;
    app.mock.state.set_event_delay(Duration::from_millis(250));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let raw = read_all(&mut response).await;
    let text = std::str::from_utf8(&raw).unwrap();
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    // Comments stand alone between events: removing them leaves the upstream's stream whole.
    let events = sse_events(text.replace(": keep-alive\n\n", "").as_bytes());
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    for block in text.split("\n\n").filter(|b| b.starts_with(':')) {
        assert_eq!(block, ": keep-alive");
    }
    app.stop().await;
}

#[actix_web::test]
async fn keep_alives_can_be_turned_off() {
    let app = spawn_app_with(|s| s.server.sse_keepalive_ms = 0).await;
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    let raw = read_all(&mut response).await;
    assert!(!std::str::from_utf8(&raw).unwrap().contains("keep-alive"));
    app.stop().await;
}
