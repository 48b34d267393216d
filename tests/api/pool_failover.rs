//! Failover across a pool of mock accounts: before the first byte a failing account is left for
//! another; after it, a failure becomes `response.failed`; an exhausted pool answers once.

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{body, error_of, eventually, read_all, retry_after_secs, sse_events, TestApp};
use crate::mock_upstream::{Scripted, TokenFailure};
use crate::pool_helpers::{logged, server_error, spawn_pool, upstream_accounts, usage_limit};

/// The warning each failed-over attempt writes (operators' log queries match on it).
const FAILED_OVER: &str = "upstream attempt failed; the request moves to another account";

#[actix_web::test]
async fn a_hundred_requests_succeed_while_two_of_three_accounts_fail_in_different_ways() {
    let (app, pool) = spawn_pool(|s| {
        s.routing.strategy = codex_relay::settings::RoutingStrategy::RoundRobin;
    })
    .await;
    // One account is down (5xx), one has spent its quota; only the third serves.
    app.mock
        .state
        .set_standing_for(pool[0].chatgpt, Some(server_error()));
    let (capped, _) = usage_limit(3600);
    app.mock
        .state
        .set_standing_for(pool[1].chatgpt, Some(capped));
    let mut after_first_batch = None;
    for batch in 0..10 {
        let requests = (0..10).map(|i| {
            let streaming = (batch + i) % 2 == 0;
            let app = &app;
            async move {
                let mut response = app
                    .responses()
                    .send_json(&body("gpt-5.5", "hi", streaming))
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let bytes = read_all(&mut response).await;
                (status, streaming, bytes)
            }
        });
        for (status, streaming, bytes) in join_all(requests).await {
            assert_eq!(status, 200, "batch {batch}");
            if streaming {
                let events = sse_events(&bytes);
                assert_eq!(events.last().unwrap()["type"], "response.completed");
            } else {
                let value: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(value["status"], "completed");
            }
        }
        after_first_batch.get_or_insert(app.mock.state.responses_for(pool[1].chatgpt));
    }
    let state = &app.mock.state;
    // The broken accounts were tried, then left alone: the breaker opened after two failures
    // (half-open probes aside); the capped account cooled at its first 429 — only requests of
    // the first concurrent batch, already on their way, reached it.
    let down = state.responses_for(pool[0].chatgpt);
    assert!(
        (2..30).contains(&down),
        "{down} calls to the account that is down"
    );
    let capped = state.responses_for(pool[1].chatgpt);
    assert!((1..=10).contains(&capped));
    assert_eq!(Some(capped), after_first_batch, "cooling, it was skipped");
    assert_eq!(state.responses_for(pool[2].chatgpt), 100);
    app.stop().await;
}

#[actix_web::test]
async fn overload_inside_a_200_stream_fails_over_and_the_client_sees_one_clean_stream() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let overloaded = Scripted::FailedInStream {
        code: "server_is_overloaded".into(),
        message: "Our servers are currently overloaded.".into(),
    };
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, overloaded.clone());
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "response.created").count(),
        1
    );
    assert!(!kinds.contains(&"response.failed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    for (n, event) in events.iter().enumerate() {
        assert_eq!(
            event["sequence_number"], n as u64,
            "one stream, numbered once"
        );
    }
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt, pool[1].chatgpt]);
    // Non-streaming requests fail over the same way.
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, overloaded);
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let value: Value = response.json().await.unwrap();
    assert_eq!(value["status"], "completed");
    app.stop().await;
}

/// A 500 whose upstream request id is `req_upstream_failed`.
fn server_error_with_request_id() -> Scripted {
    Scripted::Status {
        status: 500,
        body: "{\"detail\":\"boom\"}".into(),
        headers: vec![("x-request-id".into(), "req_upstream_failed".into())],
    }
}

/// Posts a non-streaming request with the client request id `id`; its status, read whole.
async fn post_as(app: &TestApp, id: &str) -> u16 {
    let mut response = app
        .responses()
        .insert_header(("x-request-id", id))
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let _ = read_all(&mut response).await;
    response.status().as_u16()
}

/// The log lines with message `msg` of the request `id`, once its access line is written.
async fn lines_of(app: &TestApp, id: &str, msg: &str) -> Vec<Value> {
    let of_request = |msg: &str| -> Vec<Value> {
        let lines = logged(app, msg).into_iter();
        lines.filter(|line| line["request_id"] == id).collect()
    };
    assert!(eventually(5, || async { !of_request("request").is_empty() }).await);
    of_request(msg)
}

#[actix_web::test]
async fn the_access_line_after_a_failover_names_the_account_that_answered() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let state = &app.mock.state;
    state.push_scripted_for(pool[0].chatgpt, server_error_with_request_id());
    assert_eq!(post_as(&app, "req-after-failover").await, 200);
    // The access line speaks of the account that answered, not of the one that failed.
    let access = &lines_of(&app, "req-after-failover", "request").await[0];
    assert_eq!(access["account_id"], pool[1].id.as_str(), "{access}");
    assert_eq!(access["upstream_status"], 200, "{access}");
    let upstream_id = access["upstream_request_id"].as_str().unwrap();
    assert!(
        upstream_id.starts_with("req_") && upstream_id != "req_upstream_failed",
        "{access}"
    );
    // The attempt that failed over, as operators' log queries read it.
    let moved = lines_of(&app, "req-after-failover", FAILED_OVER).await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["level"], "WARN");
    assert_eq!(moved[0]["attempt"], 1);
    assert_eq!(moved[0]["account_id"], pool[0].id.as_str());
    assert_eq!(moved[0]["reason"], "upstream_status_500");
    app.stop().await;
}

#[actix_web::test]
async fn the_access_line_names_no_upstream_answer_when_the_last_account_got_none() {
    let (app, pool) = spawn_pool(|s| s.routing.max_attempts = 2).await;
    let state = &app.mock.state;
    state.push_scripted_for(pool[0].chatgpt, server_error_with_request_id());
    // The second account's token is refused and cannot be renewed: no answer to speak of.
    let unauthorized = Scripted::Status {
        status: 401,
        body: "{\"detail\":\"Unauthorized\"}".into(),
        headers: vec![],
    };
    state.push_scripted_for(pool[1].chatgpt, unauthorized);
    state.push_token_failure(TokenFailure::Error {
        status: 401,
        code: "refresh_token_expired".into(),
    });
    let status = post_as(&app, "req-unanswered").await;
    assert!((500..600).contains(&status), "{status}");
    let access = &lines_of(&app, "req-unanswered", "request").await[0];
    // Not the first account's 500 beside the second account's id.
    assert_eq!(access["account_id"], pool[1].id.as_str(), "{access}");
    assert_eq!(access["upstream_status"], Value::Null, "{access}");
    assert_eq!(access["upstream_request_id"], Value::Null, "{access}");
    app.stop().await;
}

#[actix_web::test]
async fn a_failure_of_the_request_itself_is_not_retried_elsewhere() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let too_long = Scripted::FailedInStream {
        code: "context_length_exceeded".into(),
        message: "Your input exceeds the context window of this model.".into(),
    };
    app.mock.state.push_scripted_for(pool[0].chatgpt, too_long);
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_of(&mut response).await["code"],
        "context_length_exceeded"
    );
    let rejected = Scripted::Status {
        status: 400,
        body: "{\"detail\":\"Unsupported parameter: foo\"}".into(),
        headers: vec![],
    };
    app.mock.state.push_scripted_for(pool[0].chatgpt, rejected);
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    error_of(&mut response).await;
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt, pool[0].chatgpt]);
    app.stop().await;
}

#[actix_web::test]
async fn connect_like_cuts_and_server_errors_before_the_first_byte_move_the_request() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let state = &app.mock.state;
    state.push_scripted_for(pool[0].chatgpt, Scripted::CutAfterEvents(1));
    state.push_scripted_for(pool[1].chatgpt, server_error());
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    assert_eq!(
        upstream_accounts(&app),
        [pool[0].chatgpt, pool[1].chatgpt, pool[2].chatgpt]
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_mid_stream_cut_yields_response_failed_and_is_not_retried() {
    let (app, pool) = spawn_pool(|_| {}).await;
    // Four events: created, in_progress, the reasoning item's start — output has begun.
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, Scripted::CutAfterEvents(4));
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "upstream_disconnected");
    // The relay's own terminal event names the response the upstream opened, read from
    // `response.created` (whose whole Response object follows the id).
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[0]["response"]["object"], "response");
    assert_eq!(last["response"]["id"], events[0]["response"]["id"]);
    assert!(last.get("error").is_none(), "no top-level error key");
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt]);
    // The account was charged with the failure.
    let charged = crate::helpers::eventually(5, || async {
        let row = app.store.pool_row(&pool[0].id).unwrap();
        row.record.health.breaker == relay_actors::Breaker::Closed { failures: 1 }
    })
    .await;
    assert!(charged, "the cut was not counted against the account");
    app.stop().await;
}

#[actix_web::test]
async fn an_exhausted_pool_answers_one_429_with_the_earliest_reset() {
    let (app, pool) = spawn_pool(|_| {}).await;
    let mut earliest = i64::MAX;
    for (account, secs) in pool.iter().zip([600, 300, 900]) {
        let (script, resets_at) = usage_limit(secs);
        earliest = earliest.min(resets_at);
        app.mock.state.push_scripted_for(account.chatgpt, script);
    }
    for round in 0..2 {
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", true))
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "round {round}");
        let retry = retry_after_secs(&response);
        assert!((290..=301).contains(&retry), "retry-after {retry}");
        let error = error_of(&mut response).await;
        assert_eq!(error["code"], "usage_limit_reached");
        assert_eq!(error["type"], "usage_limit_reached");
        assert_eq!(error["resets_at"], earliest);
    }
    // The second request found every account cooling and called no one.
    assert_eq!(upstream_accounts(&app).len(), 3);
    app.stop().await;
}

#[actix_web::test]
async fn a_pool_of_open_breakers_answers_503_with_a_clear_code() {
    let (app, pool) = spawn_pool(|s| s.routing.breaker_failure_threshold = 1).await;
    // Each account down in its own way: the same failure on two accounts would be the
    // request's, and charge neither (`pool_attribution.rs`).
    for (account, status) in pool.iter().zip([500, 502, 503]) {
        let down = Scripted::Status {
            status,
            body: "{\"detail\":\"down\"}".into(),
            headers: vec![],
        };
        app.mock.state.set_standing_for(account.chatgpt, Some(down));
    }
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(error_of(&mut response).await["code"], "upstream_error");
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(&mut response).await["code"], "no_usable_account");
    app.stop().await;
}

#[actix_web::test]
async fn the_hold_back_is_bounded_in_bytes_then_the_stream_flows() {
    // A bound smaller than the first event: the stream is committed at once, so an overload
    // that follows reaches the client as the stream's own response.failed.
    let (app, pool) = spawn_pool(|s| s.routing.hold_back_bytes = 1).await;
    app.mock
        .state
        .set_event_delay(std::time::Duration::from_millis(20));
    let overloaded = Scripted::FailedInStream {
        code: "server_is_overloaded".into(),
        message: "busy".into(),
    };
    app.mock
        .state
        .push_scripted_for(pool[0].chatgpt, overloaded);
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "server_is_overloaded");
    assert_eq!(upstream_accounts(&app), [pool[0].chatgpt]);
    app.stop().await;
}
