//! `GET /metrics` on the admin listener: the OpenMetrics text, behind an admin token of any scope
//! unless `metrics.open`.

use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::{error_of, read_all, spawn_app, spawn_app_with};

#[actix_web::test]
async fn metrics_need_an_admin_token_of_any_scope() {
    let app = spawn_app().await;
    let mut refused = app.admin("GET", "/metrics", "").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        error_of(&mut refused).await["type"],
        "invalid_request_error"
    );
    let wrong = app
        .admin("GET", "/metrics", "sk-relay-admin-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let read = app.admin_token(AdminScope::Read).await;
    let mut response = app.admin("GET", "/metrics", &read).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = String::from_utf8(read_all(&mut response).await.to_vec()).unwrap();
    assert!(text.contains("codex_relay_build_info{"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Writing is not what the endpoint is for: a read token may not, a write token learns so.
    let post = app.admin("POST", "/metrics", &read).send().await.unwrap();
    assert_eq!(post.status(), 403);
    let write = app.admin_token(AdminScope::Write).await;
    let post = app.admin("POST", "/metrics", &write).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

#[actix_web::test]
async fn an_operator_may_open_metrics_to_scrapers_without_a_token() {
    let app = spawn_app_with(|s| s.metrics.open = true).await;
    let mut response = app.admin("GET", "/metrics", "").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(read_all(&mut response).await.to_vec()).unwrap();
    assert!(text.contains("codex_relay_build_info{"), "{text}");
    // Opening metrics opens nothing else.
    let accounts = app
        .admin("GET", "/admin/v1/accounts", "")
        .send()
        .await
        .unwrap();
    assert_eq!(accounts.status(), 401);
}
