//! Errors the HTTP layer makes itself, as a client sees them on the wire: those that pass
//! through the relay's services are OpenAI-shaped on both planes; those the HTTP/1 dispatcher
//! writes below every service (malformed head, head too large, head too slow) keep their status
//! and close the connection, with the empty body actix-http gives them.

use std::time::Duration;

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::spawn_app;
use crate::raw::{exchange, head, Stalled};

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

/// actix-http's HTTP/1 dispatcher answers these before any service runs, with a fixed empty
/// body (`h1/dispatcher.rs`: `poll_request`'s parse-error and `TooLarge` arms,
/// `poll_head_timer`); no middleware sees them. They keep their status and close.
#[actix_web::test]
async fn the_dispatchers_own_refusals_keep_their_status_on_both_planes() {
    let app = spawn_app().await;
    for addr in [app.addr, app.admin_addr] {
        let malformed = exchange(addr, "GARBAGE\r\n\r\n").await;
        assert_eq!(malformed.status, 400);
        let big = format!("x-big: {}\r\n", "a".repeat(200_000));
        let too_large = exchange(addr, head("GET", "/healthz", &big)).await;
        assert_eq!(too_large.status, 431);
        for answer in [&malformed, &too_large] {
            assert_eq!(answer.header("connection"), Some("close"));
        }
    }
    // The head is not finished within the client request timeout (actix-web's 5 s).
    let slow = Stalled::open(app.addr, b"GET /healthz HTTP/1.1\r\n");
    let answer = slow
        .answer(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(
        (answer.status, answer.header("connection")),
        (408, Some("close"))
    );
    app.stop().await;
}
