//! After the first byte, a stream the upstream ends in the middle of an event still ends the
//! way clients accept: whole events, then one `response.failed` — never a torn event.

use bytes::Bytes;

use relay_actors::Breaker;

use crate::helpers::{body, eventually, spawn_app};
use crate::mock_upstream::Scripted;

#[actix_web::test]
async fn an_upstream_that_closes_in_the_middle_of_an_event_yields_only_whole_events() {
    let app = spawn_app().await;
    let upstream = vec![
        Bytes::from_static(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_torn\"}}\n\nevent: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"m1\",\"role\":\"assistant\",\"content\":[]}}\n\n"),
        // The connection then ends cleanly, halfway through the next event.
        Bytes::from_static(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"del"),
    ];
    app.mock.state.push_scripted(Scripted::Raw(upstream));
    // `stream_events` parses every event as JSON: a torn event fails it.
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.output_item.added",
            "response.failed"
        ]
    );
    assert_eq!(
        events[2]["response"]["error"]["code"],
        "upstream_disconnected"
    );
    assert_eq!(events[2]["response"]["id"], "resp_torn");
    app.stop().await;
}

/// A non-streaming answer whose upstream stream ends without its terminal event (after output,
/// so too late to move) is a cut: the client gets an error and the account is charged with it.
#[actix_web::test]
async fn a_cut_non_streaming_answer_charges_the_account() {
    let app = spawn_app().await;
    let upstream = vec![Bytes::from_static(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_cut\"}}\n\nevent: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"m1\",\"role\":\"assistant\",\"content\":[]}}\n\n")];
    app.mock.state.push_scripted(Scripted::Raw(upstream));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    let charged = eventually(5, || async {
        let health = app.store.pool_row(&app.account_id).unwrap().record.health;
        health.breaker == Breaker::Closed { failures: 1 }
    })
    .await;
    assert!(charged, "the cut was not counted against the account");
    app.stop().await;
}
