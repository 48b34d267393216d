//! Responses over WebSocket: the relay's `GET /v1/responses` upgrade against the mock backend's
//! own WebSocket protocol, driven with awc's WebSocket client.

use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{CloseCode, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use crate::metrics_requests::Scrape;
use crate::mock_upstream::Scripted;
use crate::pool_helpers::{server_error, spawn_pool};

const BETA: &str = "responses_websockets=2026-02-06";

pub type Socket = Framed<BoxedSocket, Codec>;

pub async fn connect(app: &TestApp) -> Socket {
    connect_as(app, &app.key).await
}

pub async fn connect_as(app: &TestApp, key: &str) -> Socket {
    let (response, socket) = awc::Client::new()
        .ws(app.url("/v1/responses"))
        .bearer_auth(key)
        .set_header("openai-beta", BETA)
        .set_header("session-id", "sess-ws-test")
        .connect()
        .await
        .expect("the relay upgrades");
    assert_eq!(response.status(), 101);
    socket
}

pub fn create(text: &str) -> Value {
    json!({
        "type": "response.create",
        "model": "gpt-5.5",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}],
        "stream": true,
        "store": false,
    })
}

pub async fn send(socket: &mut Socket, frame: &Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The frames of one turn, up to its terminal event (an error frame is one).
pub async fn turn(socket: &mut Socket, frame: &Value) -> Vec<Value> {
    send(socket, frame).await;
    read_turn(socket).await
}

pub async fn read_turn(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let frame = tokio_timeout(socket.next()).await;
        match frame {
            Some(Ok(Frame::Text(text))) => {
                let event: Value = serde_json::from_slice(&text).unwrap();
                let kind = event["type"].as_str().unwrap_or_default().to_owned();
                events.push(event);
                if matches!(
                    kind.as_str(),
                    "response.completed" | "response.failed" | "response.incomplete" | "error"
                ) {
                    return events;
                }
            }
            Some(Ok(Frame::Ping(_))) => {}
            other => {
                panic!("the turn ended without its terminal event: {other:?} after {events:?}")
            }
        }
    }
}

pub async fn tokio_timeout<F: std::future::Future>(future: F) -> F::Output {
    actix_web::rt::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the relay answers within 10 s")
}

pub fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[actix_web::test]
async fn a_turn_and_its_follow_up_go_over_one_upstream_websocket() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let first = turn(&mut socket, &create("hello over a socket")).await;
    let kinds = types(&first);
    // The backend's rate limits come first, replaced by the caller's own: the backend's event
    // names the account's plan ("plus" in the mock), the relay's none.
    assert_eq!(
        kinds[..2],
        ["codex.rate_limits", "response.created"],
        "{kinds:?}"
    );
    assert_eq!(first[0]["plan_type"], json!(null), "{}", first[0]);
    assert_eq!(kinds.last(), Some(&"response.completed"), "{kinds:?}");
    assert!(kinds.contains(&"response.output_item.done"), "{kinds:?}");
    let id = first.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut follow_up = create("and a follow-up");
    follow_up["previous_response_id"] = json!(id);
    let second = turn(&mut socket, &follow_up).await;
    assert_eq!(types(&second).last(), Some(&"response.completed"));

    let frames = app.mock.state.websocket_frames_by_connection();
    assert_eq!(frames.len(), 2, "both turns went over the upstream socket");
    let sent: Value = frames[1].1.json().unwrap();
    assert_eq!(sent["type"], "response.create");
    assert_eq!(sent["previous_response_id"], json!(id));
    assert_eq!(frames[0].0, frames[1].0, "one upstream connection");
    // The account's token went upstream; the relay key did not.
    let auth = frames[0].1.header("authorization").unwrap();
    assert!(!auth.contains(&app.key));
    assert!(
        app.mock.state.responses_requests().is_empty(),
        "no HTTP turn"
    );
}

#[actix_web::test]
async fn a_prewarm_then_a_turn_that_continues_it() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    prewarm_and_continue(&mut socket).await;
}

/// A prewarm, then a turn that continues it, both completed; the prewarm's response id.
async fn prewarm_and_continue(socket: &mut Socket) -> String {
    let mut prewarm = create("warm up");
    prewarm["generate"] = json!(false);
    let warmed = turn(socket, &prewarm).await;
    assert_eq!(types(&warmed), ["response.created", "response.completed"]);
    let id = warmed[1]["response"]["id"].as_str().unwrap().to_owned();
    let mut next = create("now for real");
    next["previous_response_id"] = json!(id);
    let answered = turn(socket, &next).await;
    assert_eq!(
        types(&answered).last(),
        Some(&"response.completed"),
        "{answered:?}"
    );
    id
}

#[actix_web::test]
async fn a_previous_response_no_upstream_connection_knows_is_not_found_without_an_upstream_call() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let mut orphan = create("continue something");
    orphan["previous_response_id"] = json!("resp_made_elsewhere");
    let events = turn(&mut socket, &orphan).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "error");
    assert_eq!(events[0]["status"], 400);
    assert_eq!(events[0]["error"]["code"], "previous_response_not_found");
    assert_eq!(events[0]["error"]["param"], "previous_response_id");
    assert!(app.mock.state.websocket_frames().is_empty());
    // The connection goes on: the client sends its full input next.
    let events = turn(&mut socket, &create("the whole conversation")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
}

#[actix_web::test]
async fn refusals_are_error_frames_and_the_connection_goes_on() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let mut unknown_model = create("hi");
    unknown_model["model"] = json!("no-such-model");
    let events = turn(&mut socket, &unknown_model).await;
    assert_eq!(events[0]["type"], "error");
    assert_eq!(events[0]["status"], 404);
    assert_eq!(events[0]["error"]["code"], "model_not_found");

    let events = turn(&mut socket, &json!({"type": "response.cancel"})).await;
    assert_eq!(events[0]["status"], 400);

    send(&mut socket, &json!("not an object")).await;
    let events = read_turn(&mut socket).await;
    assert_eq!(events[0]["status"], 400);

    let events = turn(&mut socket, &create("still here")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
}

#[actix_web::test]
async fn a_frame_of_16_mib_is_refused_before_it_goes_upstream() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 64 * 1024 * 1024).await;
    let mut socket = connect(&app).await;
    let mut huge = create("");
    huge["input"][0]["content"][0]["text"] = json!("x".repeat(16 * 1024 * 1024));
    send(&mut socket, &huge).await;
    let error = match tokio_timeout(socket.next()).await {
        Some(Ok(Frame::Text(text))) => serde_json::from_slice::<Value>(&text).unwrap(),
        other => panic!("expected an error frame, got {other:?}"),
    };
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "frame_too_large");
    match tokio_timeout(socket.next()).await {
        Some(Ok(Frame::Close(Some(reason)))) => assert_eq!(reason.code, CloseCode::Size),
        other => panic!("expected a close 1009, got {other:?}"),
    }
    assert!(app.mock.state.websocket_frames().is_empty());
}

#[actix_web::test]
async fn an_idle_connection_is_closed_with_1001_and_counted() {
    let app = spawn_app_with(|s| s.websocket.idle_timeout_secs = 1).await;
    let admin = app.admin_token(AdminScope::Read).await;
    let mut socket = connect(&app).await;
    let scrape = Scrape::of(&app, &admin).await;
    assert_eq!(
        scrape.value("codex_relay_websocket_connections", &[]),
        Some(1.0)
    );
    loop {
        match tokio_timeout(socket.next()).await {
            Some(Ok(Frame::Ping(payload))) => socket.send(Message::Pong(payload)).await.unwrap(),
            Some(Ok(Frame::Close(Some(reason)))) => {
                assert_eq!(reason.code, CloseCode::Away);
                assert_eq!(reason.description.as_deref(), Some("idle timeout"));
                break;
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    let closed = crate::helpers::eventually(5, || async {
        let scrape = Scrape::of(&app, &admin).await;
        let idle = [("why", "idle")];
        scrape.value("codex_relay_websocket_connections_closed_total", &idle) == Some(1.0)
            && scrape.value("codex_relay_websocket_connections", &[]) == Some(0.0)
    })
    .await;
    assert!(
        closed,
        "{:?}",
        Scrape::of(&app, &admin)
            .await
            .value("codex_relay_websocket_connections", &[])
    );
}

#[actix_web::test]
async fn handshakes_the_relay_does_not_serve_are_refused_with_reasons() {
    let app = spawn_app_with(|s| s.websocket.max_connections_per_key = 1).await;
    let client = awc::Client::new();
    let refused = |result: Result<_, awc::error::WsClientError>| match result {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        Ok(_) => panic!("upgraded"),
        Err(other) => panic!("{other}"),
    };
    let unknown = client
        .ws(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .set_header("openai-beta", "responses_websockets=2099-01-01")
        .connect()
        .await;
    assert_eq!(refused(unknown), 426);
    let no_key = client.ws(app.url("/v1/responses")).connect().await;
    assert_eq!(refused(no_key), 401);
    let plain = client
        .get(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 426);

    let _held = connect(&app).await;
    let second = client
        .ws(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .connect()
        .await;
    assert_eq!(refused(second), 429);
}

#[actix_web::test]
async fn websockets_turned_off_answer_426() {
    let app = spawn_app_with(|s| s.websocket.enabled = false).await;
    let result = awc::Client::new()
        .ws(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .connect()
        .await;
    assert!(matches!(
        result,
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 426
    ));
}

#[actix_web::test]
async fn a_turn_moves_to_another_account_when_its_account_fails_before_output() {
    let (app, pool) = spawn_pool(|_| {}).await;
    app.mock
        .state
        .set_standing_for(pool[0].chatgpt, Some(server_error()));
    let mut socket = connect(&app).await;
    let events = turn(&mut socket, &create("failover please")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    let frames = app.mock.state.websocket_frames();
    let served_by = frames.last().unwrap().header("chatgpt-account-id");
    assert_ne!(served_by, Some(pool[0].chatgpt));
}

#[actix_web::test]
async fn a_turn_continuing_a_prewarm_that_moved_goes_where_the_prewarm_went() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let overloaded = Scripted::FailedInStream {
        code: "server_is_overloaded".into(),
        message: "Our servers are currently overloaded.".into(),
    };
    let state = &app.mock.state;
    state.set_standing_for(pool[0].chatgpt, Some(overloaded));
    let mut socket = connect(&app).await;
    // The conversation (its session id) is bound to the first account, where the prewarm
    // failed before output; the prewarm moved on and completed elsewhere. The turn continuing
    // it can only be served by the connection that made it: it must go there, not back to the
    // conversation's first account.
    let id = prewarm_and_continue(&mut socket).await;
    let frames = state.websocket_frames_by_connection();
    let (prewarmed_on, last) = (&frames[frames.len() - 2], &frames[frames.len() - 1]);
    assert_eq!(prewarmed_on.0, last.0, "one upstream connection");
    assert_ne!(last.1.header("chatgpt-account-id"), Some(pool[0].chatgpt));
    let sent: Value = last.1.json().unwrap();
    assert_eq!(sent["previous_response_id"], json!(id));
}

#[actix_web::test]
async fn turns_go_over_http_while_the_upstream_refuses_websockets() {
    let app = spawn_app().await;
    app.mock.state.set_websocket(false);
    let mut socket = connect(&app).await;
    let first = turn(&mut socket, &create("over http")).await;
    let kinds = types(&first);
    assert!(kinds.contains(&"response.created"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"), "{kinds:?}");
    let second = turn(&mut socket, &create("again")).await;
    assert_eq!(types(&second).last(), Some(&"response.completed"));
    let posted = app.mock.state.responses_requests();
    assert_eq!(posted.len(), 2, "both turns went over HTTP");
    let body = posted[0].json().unwrap();
    assert!(body.get("type").is_none(), "{body}");
    assert_eq!(body["stream"], true);
    let upgrades = app
        .mock
        .state
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/responses")
        .count();
    assert_eq!(upgrades, 1, "the refusal is remembered");
}

#[actix_web::test]
async fn each_turn_writes_its_own_access_line_with_its_own_request_id() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    turn(&mut socket, &create("one")).await;
    turn(&mut socket, &create("two")).await;
    socket.send(Message::Close(None)).await.unwrap();
    let found = crate::helpers::eventually(5, || async {
        crate::pool_helpers::logged(&app, "request")
            .iter()
            .filter(|line| line["path"] == "/v1/responses" && line["how"] == "completed")
            .count()
            == 2
    })
    .await;
    assert!(found, "{}", app.logs());
    let lines = crate::pool_helpers::logged(&app, "request");
    let ids: std::collections::HashSet<_> = lines
        .iter()
        .filter(|line| line["path"] == "/v1/responses")
        .filter_map(|line| line["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "the handshake and each turn: {lines:?}");
    assert!(!app.logs().contains(&app.key));
}

#[actix_web::test]
async fn a_graceful_stop_closes_idle_connections_at_once_with_1001() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let events = turn(&mut socket, &create("before the stop")).await;
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    // The drain's grace is 30 s by default: an idle connection that held it would time out here.
    assert_eq!(app.settings.server.shutdown_grace_secs, 30);
    let stopped = actix_web::rt::spawn(async move {
        app.stop_gracefully().await;
    });
    match tokio_timeout(socket.next()).await {
        Some(Ok(Frame::Close(Some(reason)))) => {
            assert_eq!(reason.code, CloseCode::Away);
            assert_eq!(reason.description.as_deref(), Some("relay stopping"));
        }
        other => panic!("expected a close 1001, got {other:?}"),
    }
    tokio_timeout(stopped).await.unwrap();
}
