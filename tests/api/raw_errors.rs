//! Errors the HTTP layer makes itself, as a client sees them on the wire, are OpenAI-shaped on
//! both planes: those that pass through the relay's services, and those the HTTP/1 dispatcher
//! writes below every service (malformed head, head too large, head too slow), which also keep
//! their status and close the connection.

use std::time::Duration;

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::spawn_app;
use crate::raw::{converse, exchange, head, RawAnswer, Stalled};

#[actix_web::test]
async fn a_query_the_handler_cannot_read_is_an_openai_error() {
    let app = spawn_app().await;
    let headers = format!("authorization: Bearer {}\r\nconnection: close\r\n", app.key);
    let twice = "/v1/models?client_version=1&client_version=2";
    let answer = exchange(app.addr, head("GET", twice, &headers)).await;
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("client_version"));
    app.stop().await;
}

#[actix_web::test]
async fn admin_method_and_body_errors_are_openai_errors() {
    let app = spawn_app().await;
    let token = app.admin_token(AdminScope::Write).await;
    let close = "connection: close\r\n";
    let answer = exchange(app.admin_addr, head("PUT", "/healthz", close)).await;
    assert_eq!(
        (answer.status, answer.error()["code"].clone()),
        (405, "method_not_allowed".into())
    );
    let authorized = format!("authorization: Bearer {token}\r\n{close}");
    let answer = exchange(app.admin_addr, head("PUT", "/admin/v1/pool", &authorized)).await;
    assert_eq!(answer.status, 405);
    answer.error();
    let bad_json = format!("{authorized}content-type: application/json\r\ncontent-length: 4\r\n");
    let request = head("POST", "/admin/v1/tenants", &bad_json) + "{nop";
    let answer = exchange(app.admin_addr, request).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error()["type"], "invalid_request_error");
    let data = exchange(app.addr, head("DELETE", "/healthz", close)).await;
    assert_eq!(
        (data.status, data.error()["code"].clone()),
        (405, "method_not_allowed".into())
    );
    app.stop().await;
}

/// What a refusal of the HTTP/1 dispatcher must look like: its status, the OpenAI error with
/// its code, and the connection ended right after it.
fn assert_refusal(what: &str, answered: Option<(RawAnswer, bool)>, status: u16, code: &str) {
    let (answer, ended) = answered.unwrap_or_else(|| panic!("{what}: no answer"));
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    let error = answer.error();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("invalid_request_error"), Some(code)),
        "{what}: {error}"
    );
    assert!(error["param"].is_null(), "{what}: {error}");
    assert!(ended, "{what}: the connection stayed open or more followed");
}

/// actix-http's HTTP/1 dispatcher answers these before any service runs (`h1/dispatcher.rs`:
/// `poll_request`'s parse-error and `TooLarge` arms, `poll_head_timer`); no middleware sees
/// them. `wire` gives them the OpenAI error body; they keep their status and close.
#[actix_web::test]
async fn the_dispatchers_own_refusals_are_openai_errors_on_both_planes() {
    let app = spawn_app().await;
    let smuggled = "POST /v1/responses HTTP/1.1\r\nhost: relay\r\ncontent-length: 5\r\n\
                    transfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let big = format!("x-big: {}\r\n", "a".repeat(200_000));
    let many: String = (0..200).map(|i| format!("x-many-{i}: 1\r\n")).collect();
    let (bad, too_large) = ("bad_request", "request_header_fields_too_large");
    let refusals = [
        (
            "a malformed request line",
            "GARBAGE\r\n\r\n".to_owned(),
            400,
            bad,
        ),
        (
            "Content-Length with Transfer-Encoding",
            smuggled.to_owned(),
            400,
            bad,
        ),
        (
            "a 200 KB header",
            head("GET", "/healthz", &big),
            431,
            too_large,
        ),
        (
            "200 header fields",
            head("GET", "/healthz", &many),
            431,
            too_large,
        ),
    ];
    for addr in [app.addr, app.admin_addr] {
        for (what, request, status, code) in &refusals {
            let answered = Stalled::open(addr, request.as_bytes())
                .answer_then_end(Duration::from_secs(10))
                .await;
            assert_refusal(what, answered, *status, code);
        }
    }
    // The head is not finished within the client request timeout (5 s), on both planes at once.
    let slow = b"GET /healthz HTTP/1.1\r\n";
    let [data, admin] = [app.addr, app.admin_addr]
        .map(|addr| Stalled::open(addr, slow).answer_then_end(Duration::from_secs(10)));
    let (data, admin) = futures_util::future::join(data, admin).await;
    for answered in [data, admin] {
        assert_refusal("a slow head", answered, 408, "request_timeout");
    }
    app.stop().await;
}

/// After answers on a kept-alive connection, a malformed request is refused the same way.
#[actix_web::test]
async fn a_malformed_request_after_others_on_a_connection_is_an_openai_error() {
    let app = spawn_app().await;
    for addr in [app.addr, app.admin_addr] {
        let healthz = head("GET", "/healthz", "").into_bytes();
        let requests = vec![healthz.clone(), healthz, b"GARBAGE\r\n\r\n".to_vec()];
        let (answers, ended) = converse(addr, requests).await;
        assert_eq!((answers[0].status, answers[1].status), (200, 200));
        assert_eq!(answers[0].header("content-type"), Some("application/json"));
        assert_refusal(
            "the third request",
            Some((answers[2].clone(), ended)),
            400,
            "bad_request",
        );
    }
    app.stop().await;
}
