//! A running relay whose audit trail cannot be written: with `audit.on_failure = "refuse"` it
//! answers 503 before any account is used; with `continue` (the default) it serves, and counts
//! and logs the rows it loses.

use std::path::{Path, PathBuf};

use codex_relay::settings::AuditOnFailure;
use codex_relay::store::admin_tokens::AdminScope;

use crate::audit::{ask, PROMPT};
use crate::helpers::{body, error_of, eventually, spawn_app_with};

/// A path no file can be created at: under a regular file.
fn unwritable(dir: &Path) -> PathBuf {
    let file = dir.join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    file.join("audit.db")
}

#[actix_web::test]
async fn with_refuse_a_broken_audit_trail_answers_503_before_any_account_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let broken = unwritable(dir.path());
    let app = spawn_app_with(|s| {
        s.audit.path = broken.clone();
        s.audit.on_failure = AuditOnFailure::Refuse;
    })
    .await;
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", PROMPT, true))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let error = error_of(&mut response).await;
    assert_eq!(error["code"], "audit_unavailable");
    assert_eq!(error["type"], "service_unavailable");
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        app.mock.state.responses_requests().is_empty(),
        "an account was used"
    );
    app.stop().await;
}

#[actix_web::test]
async fn with_continue_a_broken_audit_trail_serves_and_counts_what_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let broken = unwritable(dir.path());
    let app = spawn_app_with(|s| s.audit.path = broken.clone()).await;
    assert_eq!(ask(&app).await, 200);
    let admin = app.admin_token(AdminScope::Read).await;
    let counted = eventually(5, || async {
        let mut metrics = app.admin("GET", "/metrics", &admin).send().await.unwrap();
        let text = String::from_utf8_lossy(&metrics.body().await.unwrap()).into_owned();
        text.lines().any(|line| {
            line.starts_with("codex_relay_audit_rows_lost_total ") && !line.ends_with(" 0")
        })
    })
    .await;
    assert!(counted, "the lost row is not counted");
    assert!(app.logs().contains("audit rows cannot be written"));
    app.stop().await;
}
