//! Trace context and the request line: a client's `traceparent` puts every log line of its
//! request in its trace, under a span of the relay's own, and comes back in `traceresponse`; a
//! malformed one, or none, starts a new trace and is never an error; the upstream never sees a
//! trace context; the access line says how long each phase of the request took.

use std::collections::HashMap;

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::helpers::{body, client, read_all, spawn_app, sse_events, TestApp};
use crate::mock_upstream::Scripted;
use crate::pool_helpers::{server_error, spawn_pool};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")
}

/// The relay's log lines of the request with this id, parsed.
fn lines_of(app: &TestApp, request_id: &str) -> Vec<Value> {
    app.logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["request_id"] == request_id)
        .collect()
}

/// The access line of the request with this id.
fn access_line(app: &TestApp, request_id: &str) -> Value {
    let access: Vec<Value> = lines_of(app, request_id)
        .into_iter()
        .filter(|line| line["msg"] == "request")
        .collect();
    assert_eq!(access.len(), 1, "{access:?}");
    access.into_iter().next().unwrap()
}

/// `traceresponse` split into its trace id and span id, after checking its form.
fn traceresponse(response: &awc::ClientResponse) -> (String, String) {
    let value = response
        .headers()
        .get("traceresponse")
        .expect("traceresponse");
    let parts: Vec<&str> = value.to_str().unwrap().split('-').collect();
    assert_eq!(parts.len(), 4, "{value:?}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1].len(), 32);
    assert_eq!(parts[2].len(), 16);
    assert!(matches!(parts[3], "00" | "01" | "02" | "03"), "{value:?}");
    for part in &parts[1..] {
        assert!(part
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    (parts[1].to_owned(), parts[2].to_owned())
}

/// A non-streaming request with these extra headers; returns the response and its body.
async fn request_with(app: &TestApp, headers: &[(&str, &str)]) -> (awc::ClientResponse, Value) {
    let mut request = app.responses();
    for &(name, value) in headers {
        request = request.insert_header((name, value));
    }
    let mut response = request
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let bytes = read_all(&mut response).await;
    (response, serde_json::from_slice(&bytes).unwrap())
}

#[actix_web::test]
async fn every_line_of_a_request_is_in_the_clients_trace_under_the_relays_own_span() {
    let (app, _pool) = spawn_pool(|_| {}).await;
    // A failover makes the request write a warning besides its access line.
    app.mock.state.push_scripted(server_error());
    let (response, answer) = request_with(
        &app,
        &[
            ("x-request-id", "req-traced"),
            ("traceparent", &traceparent()),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200, "{answer}");
    let (trace_id, span_id) = traceresponse(&response);
    assert_eq!(trace_id, TRACE_ID);
    assert_ne!(span_id, CLIENT_SPAN);
    assert!(response
        .headers()
        .get("traceresponse")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("-01"));

    let lines = lines_of(&app, "req-traced");
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["span_id"], span_id.as_str(), "{line}");
    }
    let access = access_line(&app, "req-traced");
    assert_eq!(access["parent_span_id"], CLIENT_SPAN);
    assert_eq!(access["tracestate"], "congo=t61rcWkgMzE");
    app.stop().await;
}

#[actix_web::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_is_no_error() {
    let app = spawn_app().await;
    let zero_trace = format!("00-{}-{CLIENT_SPAN}-01", "0".repeat(32));
    let cases = [
        ("wrong length", format!("00-{TRACE_ID}-{CLIENT_SPAN}-1")),
        (
            "bad hex",
            format!("00-{}x-{CLIENT_SPAN}-01", &TRACE_ID[1..]),
        ),
        ("all-zero trace id", zero_trace),
        ("version ff", format!("ff-{TRACE_ID}-{CLIENT_SPAN}-01")),
    ];
    for (case, value) in cases {
        let request_id = format!("req-{}", case.replace(' ', "-"));
        let (response, answer) = request_with(
            &app,
            &[("x-request-id", &request_id), ("traceparent", &value)],
        )
        .await;
        assert_eq!(response.status(), 200, "{case}: {answer}");
        let (trace_id, _) = traceresponse(&response);
        assert_ne!(trace_id, TRACE_ID, "{case}");
        assert_ne!(trace_id, "0".repeat(32), "{case}");
        let access = access_line(&app, &request_id);
        assert_eq!(access["trace_id"], trace_id.as_str(), "{case}");
        assert_eq!(access["parent_span_id"], Value::Null, "{case}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn without_a_traceparent_each_request_starts_its_own_trace() {
    let app = spawn_app().await;
    let (first, _) = request_with(&app, &[("x-request-id", "req-one")]).await;
    let (second, _) = request_with(&app, &[("x-request-id", "req-two")]).await;
    let (first_trace, first_span) = traceresponse(&first);
    let (second_trace, second_span) = traceresponse(&second);
    assert_ne!(first_trace, second_trace);
    assert_ne!(first_span, second_span);
    assert_eq!(
        access_line(&app, "req-one")["trace_id"],
        first_trace.as_str()
    );
    assert_eq!(
        access_line(&app, "req-two")["span_id"],
        second_span.as_str()
    );
    // The admin plane takes part too.
    let response = client()
        .get(format!("http://{}/healthz", app.admin_addr))
        .insert_header(("x-request-id", "req-admin"))
        .insert_header(("traceparent", traceparent()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(traceresponse(&response).0, TRACE_ID);
    assert_eq!(access_line(&app, "req-admin")["trace_id"], TRACE_ID);
    app.stop().await;
}

#[actix_web::test]
async fn an_operators_change_is_logged_in_the_trace_of_its_request() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let response = app
        .admin("POST", "/admin/v1/tenants", &write)
        .insert_header(("x-request-id", "req-tenant"))
        .insert_header(("traceparent", traceparent()))
        .send_json(&json!({"name": "traced"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, span_id) = traceresponse(&response);
    let lines = lines_of(&app, "req-tenant");
    let created: Vec<&Value> = lines
        .iter()
        .filter(|line| line["msg"] == "tenant created")
        .collect();
    assert_eq!(created.len(), 1, "{lines:?}");
    assert_eq!(created[0]["trace_id"], TRACE_ID);
    assert_eq!(created[0]["span_id"], span_id.as_str());
    app.stop().await;
}

#[actix_web::test]
async fn the_upstream_never_receives_a_trace_context() {
    let app = spawn_app().await;
    let (response, _) = request_with(
        &app,
        &[
            ("traceparent", &traceparent()),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "user=alice"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let requests = app.mock.state.responses_requests();
    assert!(!requests.is_empty());
    for request in &requests {
        for (name, value) in &request.headers {
            let name = name.as_str();
            assert!(
                !matches!(
                    name,
                    "traceparent" | "tracestate" | "traceresponse" | "baggage"
                ),
                "the upstream received {name}: {value}"
            );
            assert!(!value.contains(TRACE_ID), "{name}: {value}");
        }
    }
    app.stop().await;
}

/// The access line's phases by name in milliseconds, each checked to be a whole number of
/// microseconds.
fn phases(access: &Value) -> HashMap<&'static str, f64> {
    [
        "auth",
        "admission",
        "body",
        "lease",
        "failover",
        "upstream_connect",
        "upstream_first_byte",
        "stream",
    ]
    .into_iter()
    .map(|phase| {
        let field = format!("phase_{phase}_us");
        let took = access[&field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} missing or not whole: {access}"));
        (phase, took as f64 / 1000.0)
    })
    .collect()
}

/// Every phase is there and plausible: the first byte comes after the head, and the phases
/// (`upstream_connect` is part of `upstream_first_byte`) fit in the request's duration — whole
/// milliseconds, cut down, so the sum may pass it by less than one.
fn assert_plausible(access: &Value) -> HashMap<&'static str, f64> {
    let phases = phases(access);
    assert!(
        phases["upstream_first_byte"] >= phases["upstream_connect"],
        "{access}"
    );
    let sum: f64 = phases
        .iter()
        .filter(|(phase, _)| **phase != "upstream_connect")
        .map(|(_, took)| took)
        .sum();
    let duration = access["duration_ms"].as_f64().unwrap();
    assert!(
        sum < duration + 1.0,
        "phases sum to {sum} ms in {duration} ms: {access}"
    );
    phases
}

/// Sends a streaming request with this id; returns its access line once the stream has ended.
async fn stream_line(app: &TestApp, request_id: &str) -> Value {
    let mut response = app
        .responses()
        .insert_header(("x-request-id", request_id))
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = sse_events(&read_all(&mut response).await);
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    access_line(app, request_id)
}

#[actix_web::test]
async fn the_line_of_a_stream_says_how_long_each_phase_took() {
    let app = spawn_app().await;
    app.mock
        .state
        .set_event_delay(std::time::Duration::from_millis(20));
    let access = stream_line(&app, "req-stream").await;
    assert_eq!(access["how"], "completed");
    assert_eq!(access["attempts"], 1);
    let phases = assert_plausible(&access);
    assert_eq!(phases["failover"], 0.0);
    // The events after the held-back start arrive 20 ms apart: the stream phase has them.
    assert!(phases["stream"] >= 20.0, "{access}");
    app.stop().await;
}

#[actix_web::test]
async fn the_line_of_a_failed_over_request_counts_its_attempts_and_the_time_they_took() {
    let (app, _pool) = spawn_pool(|_| {}).await;
    app.mock.state.push_scripted(server_error());
    let access = stream_line(&app, "req-failover").await;
    assert_eq!(access["attempts"], 2);
    let phases = assert_plausible(&access);
    assert!(phases["failover"] > 0.0, "{access}");

    // A non-streaming answer that failed over has every phase too: its stream phase is the
    // rest of the upstream's answer, read for the assembly.
    app.mock.state.push_scripted(Scripted::Status {
        status: 503,
        body: "{}".into(),
        headers: vec![],
    });
    let (response, _) = request_with(&app, &[("x-request-id", "req-failover-json")]).await;
    assert_eq!(response.status(), 200);
    let access = access_line(&app, "req-failover-json");
    assert_eq!(access["attempts"], 2);
    assert_plausible(&access);
    app.stop().await;
}

#[actix_web::test]
async fn a_line_leaves_out_the_phases_a_request_never_reached() {
    let app = spawn_app().await;
    let response = app
        .get("/v1/models")
        .insert_header(("x-request-id", "req-models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let access = access_line(&app, "req-models");
    let line = access.as_object().unwrap();
    for reached in ["phase_auth_us", "phase_admission_us"] {
        assert!(access[reached].is_u64(), "{reached}: {access}");
    }
    let fields: Vec<&String> = line.keys().collect();
    for never in [
        "phase_body_us",
        "phase_lease_us",
        "phase_failover_us",
        "phase_upstream_connect_us",
        "phase_upstream_first_byte_us",
        "phase_stream_us",
        "attempts",
        "parent_span_id",
        "tracestate",
    ] {
        assert!(!line.contains_key(never), "{never}: {fields:?}");
    }
    app.stop().await;
}
