//! Responses over WebSocket: the handshake and its refusals, turns as frames, chaining within a
//! connection, prewarm, scripts, sizes, cuts, recording, and bench mode.

use awc::error::{WsClientError, WsProtocolError};
use awc::ws::{CloseCode, Frame, Message};
use futures_util::{Sink, SinkExt, Stream};

use super::*;

const BETA: &str = "responses_websockets=2026-02-06";

/// The client half of a connection, whatever awc names its type.
trait Socket:
    Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}

impl<T> Socket for T where
    T: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin
{
}

/// A handshake as the Codex CLI sends it, for account "acct-1".
fn handshake(mock: &MockUpstream) -> awc::ws::WebsocketsRequest {
    awc::Client::new()
        .ws(format!("{}/responses", mock.url()))
        .header("authorization", format!("Bearer {}", access_token()))
        .header("chatgpt-account-id", "acct-1")
        .header("openai-beta", BETA)
        .max_frame_size(1 << 20)
}

async fn connect(mock: &MockUpstream) -> impl Socket {
    handshake(mock).connect().await.unwrap().1
}

/// The status a handshake is refused with.
async fn refused(request: awc::ws::WebsocketsRequest) -> StatusCode {
    match request.connect().await {
        Err(WsClientError::InvalidResponseStatus(status)) => status,
        Err(error) => panic!("{error}"),
        Ok(_) => panic!("upgraded"),
    }
}

/// `codex_body(text)` as a `response.create` message.
fn create(text: &str) -> Value {
    let mut body = codex_body(text);
    body["type"] = "response.create".into();
    body
}

async fn send(socket: &mut impl Socket, body: &Value) {
    socket
        .send(Message::Text(body.to_string().into()))
        .await
        .unwrap();
}

async fn next_frame(socket: &mut impl Socket) -> Option<Result<Frame, WsProtocolError>> {
    actix_rt::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a frame within 5 s")
}

async fn next_json(socket: &mut impl Socket) -> Value {
    match next_frame(socket).await {
        Some(Ok(Frame::Text(text))) => serde_json::from_slice(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Sends a turn and reads its frames up to the terminal one (completed, failed or error).
async fn turn(socket: &mut impl Socket, body: &Value) -> Vec<Value> {
    send(socket, body).await;
    let mut frames = Vec::new();
    loop {
        let frame = next_json(socket).await;
        let kind = frame["type"].as_str().unwrap().to_owned();
        frames.push(frame);
        if ["response.completed", "response.failed", "error"].contains(&kind.as_str()) {
            return frames;
        }
    }
}

fn completed_id(frames: &[Value]) -> String {
    let completed = frames.last().unwrap();
    assert_eq!(completed["type"], "response.completed", "{completed}");
    completed["response"]["id"].as_str().unwrap().to_owned()
}

/// Asserts that `frames` are a turn that failed with `server_is_overloaded`, and that the
/// response it failed is nothing to chain to on `socket`.
async fn failed_overloaded_and_not_chained(socket: &mut impl Socket, frames: &[Value]) {
    let kinds: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["codex.rate_limits", "response.created", "response.failed"]
    );
    assert_eq!(
        frames[2]["response"]["error"]["code"],
        "server_is_overloaded"
    );
    let mut follow_up = create("hi");
    follow_up["previous_response_id"] = frames[2]["response"]["id"].clone();
    let frames = turn(socket, &follow_up).await;
    assert_eq!(frames[0]["error"]["code"], "previous_response_not_found");
}

fn answer_text(frames: &[Value]) -> String {
    of_type(frames, "response.output_text.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect()
}

/// The close code of the next frame, which must be a Close.
async fn close_code(socket: &mut impl Socket) -> CloseCode {
    match next_frame(socket).await {
        Some(Ok(Frame::Close(Some(reason)))) => reason.code,
        other => panic!("expected a Close frame, got {other:?}"),
    }
}

/// What changes between two answers to the same body: ids, random content, times.
fn normalized(mut value: Value) -> Value {
    match &mut value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                *field = match key.as_str() {
                    "id" | "item_id" | "call_id" | "encrypted_content" | "created_at" => {
                        Value::Null
                    }
                    _ => normalized(field.take()),
                };
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = normalized(item.take());
            }
        }
        _ => {}
    }
    value
}

#[actix_rt::test]
async fn the_handshake_upgrades_with_the_beta_header_and_is_recorded() {
    let mock = start().await;
    let (response, _socket) = handshake(&mock).connect().await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap();
    assert!(header("x-codex-turn-state").starts_with("ts_"));
    assert_eq!(header("x-models-etag"), "\"mock-etag-1\"");
    let recorded = mock.state.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("GET", "/responses")
    );
    assert_eq!(recorded[0].header("openai-beta"), Some(BETA));
    assert_eq!(mock.state.websocket_connections_opened(), 1);
    assert_eq!(mock.state.websocket_connections_closed(), 0);
    mock.stop().await;
}

#[actix_rt::test]
async fn the_handshake_is_refused_over_http_as_the_backend_refuses_it() {
    let mock = start().await;
    let no_beta = awc::Client::new()
        .ws(format!("{}/responses", mock.url()))
        .header("authorization", format!("Bearer {}", access_token()))
        .header("chatgpt-account-id", "acct-1");
    assert_eq!(refused(no_beta).await, StatusCode::UPGRADE_REQUIRED);
    let other_beta = handshake(&mock).set_header("openai-beta", "responses=experimental");
    assert_eq!(refused(other_beta).await, StatusCode::UPGRADE_REQUIRED);

    let no_bearer = handshake(&mock).set_header("authorization", "Basic eDp5");
    assert_eq!(refused(no_bearer).await, StatusCode::UNAUTHORIZED);
    let no_account = awc::Client::new()
        .ws(format!("{}/responses", mock.url()))
        .header("authorization", format!("Bearer {}", access_token()))
        .header("openai-beta", BETA);
    assert_eq!(refused(no_account).await, StatusCode::BAD_REQUEST);

    let capped = Scripted::Status {
        status: 429,
        body: json!({"error": {"type": "usage_limit_reached"}}).to_string(),
        headers: vec![],
    };
    mock.state.set_standing_for("acct-1", Some(capped));
    assert_eq!(
        refused(handshake(&mock)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    mock.state.set_standing_for("acct-1", None);

    mock.state.set_websocket(false);
    assert_eq!(
        refused(handshake(&mock)).await,
        StatusCode::UPGRADE_REQUIRED
    );
    mock.state.set_websocket(true);
    let _socket = connect(&mock).await;

    assert_eq!(mock.state.websocket_connections_opened(), 1);
    assert_eq!(
        mock.state.requests().len(),
        7,
        "every handshake is recorded"
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn a_turn_is_the_sse_stream_as_frames_after_the_rate_limits() {
    let mock = start().await;
    mock.state.set_used_percent_for("acct-1", 55.0, 7.5);
    // The same bytes over both transports, so that even the usage estimate is the same.
    let body = create("say hi");
    let (status, _, sse) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::OK);
    let sse = parse_sse(&sse);

    let mut socket = connect(&mock).await;
    let mut frames = turn(&mut socket, &body).await;
    let rate_limits = frames.remove(0);
    assert_eq!(rate_limits["type"], "codex.rate_limits");
    let limits = &rate_limits["rate_limits"];
    assert_eq!(limits["allowed"], true);
    assert_eq!(limits["primary"]["used_percent"], 55.0);
    assert_eq!(limits["primary"]["window_minutes"], 300);
    assert!(limits["primary"]["reset_at"].as_i64().unwrap() > unix_now());
    assert_eq!(limits["secondary"]["used_percent"], 7.5);
    assert_eq!(limits["secondary"]["window_minutes"], 10_080);

    assert!(sse.len() > 10, "{} events", sse.len());
    assert_eq!(answer_text(&frames), HELLO_TEXT);
    assert_sequenced(&frames);
    let normalized_all =
        |events: Vec<Value>| events.into_iter().map(normalized).collect::<Vec<_>>();
    assert_eq!(normalized_all(frames), normalized_all(sse));
    mock.stop().await;
}

#[actix_rt::test]
async fn previous_response_id_names_only_a_response_of_the_same_connection() {
    let mock = start().await;
    let mut socket = connect(&mock).await;
    let mut first = create("hi");
    // The backend ignores `stream` over a WebSocket.
    first.as_object_mut().unwrap().remove("stream");
    let id = completed_id(&turn(&mut socket, &first).await);

    let mut follow_up = create("use a tool");
    follow_up["previous_response_id"] = id.clone().into();
    let frames = turn(&mut socket, &follow_up).await;
    completed_id(&frames);
    assert_eq!(
        of_type(&frames, "response.function_call_arguments.done").len(),
        1
    );

    let mut other = connect(&mock).await;
    let frames = turn(&mut other, &follow_up).await;
    let expected = json!({
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "message": format!("Previous response with id '{id}' not found."),
            "param": "previous_response_id",
        },
    });
    assert_eq!(frames, vec![expected]);
    // The refusal leaves the connection open.
    completed_id(&turn(&mut other, &create("hi")).await);
    mock.stop().await;
}

#[actix_rt::test]
async fn a_prewarm_creates_an_empty_response_to_chain_to() {
    let mock = start().await;
    let mut socket = connect(&mock).await;
    let mut prewarm = create("hi");
    prewarm["generate"] = false.into();
    let frames = turn(&mut socket, &prewarm).await;
    let kinds: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["response.created", "response.completed"]);
    let response = &frames[1]["response"];
    assert_eq!(response["output"], json!([]));
    assert_eq!(response["usage"]["total_tokens"], 0);
    assert_eq!(response["usage"]["input_tokens"], 0);

    let mut follow_up = create("hi");
    follow_up["previous_response_id"] = completed_id(&frames).into();
    let frames = turn(&mut socket, &follow_up).await;
    assert_eq!(answer_text(&frames), HELLO_TEXT);
    mock.stop().await;
}

#[actix_rt::test]
async fn an_account_that_answers_every_call_alike_answers_a_prewarm_so_too() {
    let mock = start().await;
    let overloaded = Scripted::FailedInStream {
        code: "server_is_overloaded".into(),
        message: "busy".into(),
    };
    mock.state.set_standing_for("acct-1", Some(overloaded));
    // An answer queued for the account waits for a turn that generates.
    let queued = Scripted::Status {
        status: 429,
        body: json!({"error": {"type": "usage_limit_reached", "message": "spent"}}).to_string(),
        headers: vec![],
    };
    mock.state.push_scripted_for("acct-1", queued);
    let mut socket = connect(&mock).await;
    let mut prewarm = create("hi");
    prewarm["generate"] = false.into();
    let frames = turn(&mut socket, &prewarm).await;
    failed_overloaded_and_not_chained(&mut socket, &frames).await;
    let frames = turn(&mut socket, &create("hi")).await;
    assert_eq!(
        (frames[0]["type"].as_str(), frames[0]["status"].as_u64()),
        (Some("error"), Some(429))
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn scripts_become_error_frames_and_failures_and_the_connection_stays_open() {
    let mock = start().await;
    let capped = Scripted::Status {
        status: 429,
        body: json!({"error": {"type": "usage_limit_reached", "message": "spent"}}).to_string(),
        headers: vec![("x-codex-primary-used-percent".into(), "100.0".into())],
    };
    mock.state.push_scripted_for("acct-1", capped);
    mock.state.push_scripted_for(
        "acct-1",
        Scripted::Status {
            status: 500,
            body: "boom".into(),
            headers: vec![],
        },
    );
    mock.state.push_scripted_for(
        "acct-1",
        Scripted::FailedInStream {
            code: "server_is_overloaded".into(),
            message: "busy".into(),
        },
    );
    let mut socket = connect(&mock).await;

    let frames = turn(&mut socket, &create("hi")).await;
    let expected = json!({
        "type": "error",
        "status": 429,
        "error": {"type": "usage_limit_reached", "message": "spent"},
        "headers": {"x-codex-primary-used-percent": "100.0"},
    });
    assert_eq!(frames, vec![expected]);
    let frames = turn(&mut socket, &create("hi")).await;
    let expected = json!({
        "type": "error",
        "status": 500,
        "error": {"type": "server_error", "message": "boom"},
        "headers": {},
    });
    assert_eq!(frames, vec![expected]);

    let frames = turn(&mut socket, &create("hi")).await;
    failed_overloaded_and_not_chained(&mut socket, &frames).await;

    assert_eq!(
        answer_text(&turn(&mut socket, &create("hi")).await),
        HELLO_TEXT
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn a_turn_the_backend_refuses_is_an_error_frame_with_its_status() {
    let mock = start().await;
    let mut socket = connect(&mock).await;
    let mut hot = create("hi");
    hot["temperature"] = 0.5.into();
    let frames = turn(&mut socket, &hot).await;
    let expected = json!({
        "type": "error",
        "status": 400,
        "error": {"type": "invalid_request_error", "message": "Unsupported parameter: temperature"},
    });
    assert_eq!(frames, vec![expected]);

    let mut not_a_create = create("hi");
    not_a_create["type"] = "response.cancel".into();
    let frames = turn(&mut socket, &not_a_create).await;
    assert_eq!(frames[0]["status"], 400);

    let mut reference = create("hi");
    let item = json!({"type": "item_reference", "id": "rs_1"});
    reference["input"].as_array_mut().unwrap().push(item);
    let frames = turn(&mut socket, &reference).await;
    assert_eq!(frames[0]["status"], 404);
    assert_eq!(frames[0]["error"]["param"], "input");

    assert_eq!(
        answer_text(&turn(&mut socket, &create("hi")).await),
        HELLO_TEXT
    );
    assert_eq!(
        mock.state.websocket_frames().len(),
        4,
        "refused turns are recorded too"
    );
    mock.stop().await;
}

/// `create("hi")` padded to exactly `len` bytes.
fn create_of_len(len: usize) -> String {
    let mut body = create("hi");
    body["pad"] = "".into();
    let bare = body.to_string().len();
    body["pad"] = "x".repeat(len - bare).into();
    let text = body.to_string();
    assert_eq!(text.len(), len);
    text
}

#[actix_rt::test]
async fn a_message_of_16_mib_or_more_closes_the_connection_with_1009() {
    let mock = start().await;
    let mut socket = connect(&mock).await;
    let just_under = create_of_len(16 * 1024 * 1024 - 1);
    socket.send(Message::Text(just_under.into())).await.unwrap();
    let mut frames = vec![next_json(&mut socket).await];
    while frames.last().unwrap()["type"] != "response.completed" {
        frames.push(next_json(&mut socket).await);
    }
    assert_eq!(answer_text(&frames), HELLO_TEXT);

    let limit = create_of_len(16 * 1024 * 1024);
    socket.send(Message::Text(limit.into())).await.unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);
    wait_until("the connection to end", || {
        mock.state.websocket_connections_closed() == 1
    })
    .await;
    assert_eq!(
        mock.state.websocket_frames().len(),
        1,
        "the oversize one is not read"
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn pings_are_answered_and_a_binary_frame_closes_with_1003() {
    let mock = start().await;
    let mut socket = connect(&mock).await;
    socket.send(Message::Ping("hello".into())).await.unwrap();
    match next_frame(&mut socket).await {
        Some(Ok(Frame::Pong(payload))) => assert_eq!(&payload[..], b"hello"),
        other => panic!("expected a pong, got {other:?}"),
    }
    socket
        .send(Message::Binary(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Unsupported);

    let mut socket = connect(&mock).await;
    socket
        .send(Message::Close(Some(CloseCode::Normal.into())))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Normal);
    wait_until("both connections to end", || {
        mock.state.websocket_connections_closed() == 2
    })
    .await;
    mock.stop().await;
}

#[actix_rt::test]
async fn a_cut_ends_the_connection_after_n_events_without_a_close_frame() {
    let mock = start().await;
    mock.state
        .push_scripted_for("acct-1", Scripted::CutAfterEvents(2));
    let mut socket = connect(&mock).await;
    send(&mut socket, &create("hi")).await;
    let kinds = [
        next_json(&mut socket).await,
        next_json(&mut socket).await,
        next_json(&mut socket).await,
    ]
    .map(|frame| frame["type"].as_str().unwrap().to_owned());
    assert_eq!(
        kinds,
        [
            "codex.rate_limits",
            "response.created",
            "response.in_progress"
        ]
    );
    match next_frame(&mut socket).await {
        None | Some(Err(_)) => {}
        Some(Ok(frame)) => panic!("expected the connection to end abruptly, got {frame:?}"),
    }
    assert_eq!(mock.state.websocket_connections_closed(), 1);
    mock.stop().await;
}

#[actix_rt::test]
async fn frames_are_recorded_with_the_connection_they_came_over() {
    let mock = start().await;
    let mut first = connect(&mock).await;
    let mut second = connect(&mock).await;
    turn(&mut first, &create("one")).await;
    turn(&mut second, &create("two")).await;
    turn(&mut first, &create("three")).await;

    let frames = mock.state.websocket_frames_by_connection();
    let seen: Vec<_> = frames
        .iter()
        .map(|(connection, frame)| {
            let body = frame.json().unwrap();
            let text = body["input"][1]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned();
            (*connection, text)
        })
        .collect();
    let expected = [(1, "one"), (2, "two"), (1, "three")].map(|(c, t)| (c, t.to_owned()));
    assert_eq!(seen, expected);
    let (_, frame) = &frames[0];
    assert_eq!(
        (frame.method.as_str(), frame.path.as_str()),
        ("WS", "/responses")
    );
    assert_eq!(frame.header("chatgpt-account-id"), Some("acct-1"));
    assert_eq!(frame.json().unwrap()["type"], "response.create");
    assert_eq!(mock.state.websocket_frames().len(), 3);
    assert!(mock.state.responses_requests().is_empty());

    drop((first, second));
    wait_until("both connections to end", || {
        mock.state.websocket_connections_closed() == 2
    })
    .await;
    assert_eq!(mock.state.websocket_connections_opened(), 2);
    mock.stop().await;
}

#[actix_rt::test]
async fn bench_mode_answers_frames_from_prebuilt_events_and_records_nothing() {
    let mock = bench::start("127.0.0.1:0", 1, None).await.unwrap().0;
    let bench_handshake = || {
        awc::Client::new()
            .ws(format!("{}/responses", mock.url()))
            .header("authorization", "Bearer bench")
            .header("openai-beta", BETA)
            .max_frame_size(1 << 20)
    };
    let mut socket = bench_handshake().connect().await.unwrap().1;
    let frames = turn(&mut socket, &create("bench fast")).await;
    assert_eq!(frames[0]["type"], "codex.rate_limits");
    assert_eq!(frames.len(), 1 + 58);
    assert_sequenced(&frames[1..]);
    assert_eq!(of_type(&frames, "response.output_text.delta").len(), 48);

    let started = Instant::now();
    let frames = turn(&mut socket, &create("bench paced 5 50")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "4 gaps of 50 ms"
    );
    assert_eq!(of_type(&frames, "response.output_text.delta").len(), 3);
    completed_id(&frames);

    mock.state.set_websocket(false);
    assert_eq!(
        refused(bench_handshake()).await,
        StatusCode::UPGRADE_REQUIRED
    );
    assert!(mock.state.requests().is_empty());
    assert!(mock.state.websocket_frames().is_empty());
    mock.stop().await;
}
