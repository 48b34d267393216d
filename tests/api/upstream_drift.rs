//! Upstream drift: an event type, an `x-codex-*` header or an error code the relay does not know
//! reaches the client unchanged, is counted in `codex_relay_upstream_unknown_total` and is
//! logged once per kind and name.

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::{body, read_all, spawn_app, sse_events, TestApp};
use crate::mock_upstream::Scripted;

async fn scrape(app: &TestApp) -> String {
    let token = app.admin_token(AdminScope::Read).await;
    let mut response = app.admin("GET", "/metrics", &token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    String::from_utf8(read_all(&mut response).await.to_vec()).unwrap()
}

fn warnings_naming(logs: &str, name: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains("does not know") && l.contains(&format!("\"name\":\"{name}\"")))
        .count()
}

#[actix_web::test]
async fn an_unknown_event_and_header_pass_through_and_are_counted_and_logged_once() {
    let app = spawn_app().await;
    app.mock.state.set_drift(true);
    for _ in 0..2 {
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", true))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("x-codex-upcoming-feature").unwrap(),
            "1"
        );
        let events = sse_events(&read_all(&mut response).await);
        let unknown = events
            .iter()
            .find(|e| e["type"] == "response.upcoming_feature")
            .expect("the unknown event reaches the client");
        assert_eq!(unknown["detail"]["new"], true);
        assert_eq!(events.last().unwrap()["type"], "response.completed");
    }
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            r#"codex_relay_upstream_unknown_total{kind="event",name="response.upcoming_feature"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"codex_relay_upstream_unknown_total{kind="header",name="x-codex-upcoming-feature"} 2"#
        ),
        "{metrics}"
    );
    // Known events and headers are not counted.
    assert_eq!(
        metrics
            .matches("codex_relay_upstream_unknown_total{")
            .count(),
        2
    );
    let logs = app.logs();
    assert_eq!(
        warnings_naming(&logs, "response.upcoming_feature"),
        1,
        "{logs}"
    );
    assert_eq!(
        warnings_naming(&logs, "x-codex-upcoming-feature"),
        1,
        "{logs}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_unknown_error_code_reaches_the_client_and_is_counted() {
    let app = spawn_app().await;
    app.mock.state.push_scripted(Scripted::FailedInStream {
        code: "brand_new_refusal".into(),
        message: "Something new.".into(),
    });
    let events = app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let failed = events.last().unwrap();
    assert_eq!(failed["type"], "response.failed");
    assert_eq!(failed["response"]["error"]["code"], "brand_new_refusal");
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            r#"codex_relay_upstream_unknown_total{kind="error",name="brand_new_refusal"} 1"#
        ),
        "{metrics}"
    );
    assert_eq!(warnings_naming(&app.logs(), "brand_new_refusal"), 1);
    app.stop().await;
}
