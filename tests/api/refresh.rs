//! Token refresh against the mock issuer: proactive and on expiry, single-flight under load,
//! reactive after an upstream 401, permanent failures taking the account out with the reason,
//! transient failures retried, rotated tokens kept and written again when the store refuses them
//! (a held lock, a full disk), and no token in any log line.

use std::collections::HashSet;
use std::time::Duration;

use codex_relay::oauth::auth_json;
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::AccountSummary;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::helpers::{
    admin_call, body, error_of, eventually, spawn_app_expiring, spawn_app_with, TestApp,
};
use crate::mock_upstream::{fake_auth_json, Scripted, TokenFailure};

async fn ask(app: &TestApp) -> u16 {
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let _ = response.body().await;
    response.status().as_u16()
}

fn summary(app: &TestApp) -> AccountSummary {
    app.store.list_accounts().unwrap().remove(0)
}

fn token_version(app: &TestApp) -> i64 {
    app.store
        .refresh_token(&app.account_id)
        .unwrap()
        .unwrap()
        .token_version
}

fn bearer_of_last_upstream_call(app: &TestApp) -> String {
    let last = app.mock.state.responses_requests().pop().unwrap();
    let header = last.header("authorization").unwrap();
    header.trim_start_matches("Bearer ").to_owned()
}

/// Every token the relay has held must stay out of its logs.
fn assert_no_token_logged(app: &TestApp) {
    let logs = app.logs();
    let mut secrets = app.mock.state.issued_tokens();
    for part in ["access_token", "refresh_token", "id_token"] {
        secrets.push(app.auth_json["tokens"][part].as_str().unwrap().to_owned());
    }
    let stored = app.store.refresh_token(&app.account_id).unwrap();
    secrets.extend(stored.map(|s| s.refresh_token.expose_secret().to_owned()));
    for secret in secrets {
        assert!(!logs.contains(&secret), "a token reached the logs");
    }
}

#[actix_web::test]
async fn a_token_within_the_skew_serves_while_it_is_refreshed_and_stored() {
    // The account's token expires in an hour; a two-hour skew makes it due at once.
    let app = spawn_app_with(|s| s.oauth.refresh_skew_secs = 7200).await;
    let before = token_version(&app);
    let original = app.auth_json["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(ask(&app).await, 200);
    assert_eq!(
        bearer_of_last_upstream_call(&app),
        original,
        "the current token served"
    );
    assert!(eventually(10, || async { app.mock.state.refresh_calls() == 1 }).await);
    assert!(eventually(10, || async { token_version(&app) == before + 1 }).await);
    let stored = summary(&app);
    assert!(stored.last_refresh.is_some());
    let issued = app.mock.state.issued_tokens();
    assert!(
        eventually(10, || async {
            ask(&app).await == 200 && issued.contains(&bearer_of_last_upstream_call(&app))
        })
        .await,
        "the refreshed token was never used"
    );
    // The new token is still inside the (huge) skew, but one refresh per token set is enough
    // for a request: only the background check or later requests start another.
    assert_no_token_logged(&app);
    app.stop().await;
}

#[actix_web::test]
async fn fifty_requests_on_an_expired_token_cause_exactly_one_token_call() {
    let app = spawn_app_expiring(-30, |_| {}).await;
    app.mock.state.set_token_delay(Duration::from_millis(300));
    let requests = (0..50).map(|_| ask(&app));
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.mock.state.refresh_calls(), 1);
    let issued = app.mock.state.issued_tokens();
    assert_eq!(issued.len(), 1);
    for request in app.mock.state.responses_requests() {
        let bearer = request.header("authorization").unwrap();
        assert_eq!(
            bearer,
            format!("Bearer {}", issued[0]),
            "an expired token was sent"
        );
    }
    assert_no_token_logged(&app);
    app.stop().await;
}

#[actix_web::test]
async fn an_upstream_401_refreshes_once_and_retries_once_for_every_waiting_request() {
    let app = spawn_app_with(|_| {}).await;
    let original = app.auth_json["tokens"]["access_token"].as_str().unwrap();
    app.mock.state.revoke_access_token(original);
    app.mock.state.set_token_delay(Duration::from_millis(200));
    let statuses = futures_util::future::join_all((0..20).map(|_| ask(&app))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.mock.state.refresh_calls(), 1);
    assert_eq!(summary(&app).shown_state(), "active");
    assert_no_token_logged(&app);
    app.stop().await;
}

#[actix_web::test]
async fn a_401_on_a_freshly_refreshed_token_needs_a_human() {
    let app = spawn_app_with(|_| {}).await;
    for _ in 0..2 {
        app.mock.state.push_scripted(Scripted::Status {
            status: 401,
            body: r#"{"detail":"Unauthorized"}"#.to_owned(),
            headers: Vec::new(),
        });
    }
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    error_of(&mut response).await;
    assert_eq!(app.mock.state.refresh_calls(), 1);
    assert_eq!(
        app.mock.state.responses_requests().len(),
        2,
        "one retry, not more"
    );
    assert_eq!(ask(&app).await, 503, "the account is out of rotation");
    assert!(app.logs().contains("upstream rejected the access token"));
    app.stop().await;
}

#[actix_web::test]
async fn each_permanent_refresh_error_takes_the_account_out_with_what_to_do() {
    let cases = [
        TokenFailure::Error {
            status: 401,
            code: "refresh_token_expired".into(),
        },
        TokenFailure::Error {
            status: 401,
            code: "refresh_token_reused".into(),
        },
        TokenFailure::Error {
            status: 400,
            code: "refresh_token_invalidated".into(),
        },
        TokenFailure::Status(401),
    ];
    for failure in cases {
        let app = spawn_app_expiring(-30, |_| {}).await;
        app.mock.state.push_token_failure(failure.clone());
        assert_eq!(ask(&app).await, 503, "{failure:?}");
        let health: Value = crate::helpers::client()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["usable_accounts"], 0, "{failure:?}");
        // Out of rotation at once; the reason is written to the store right after.
        let persisted = eventually(5, || async {
            summary(&app).shown_state() == "reauth_required"
        })
        .await;
        assert!(persisted, "{failure:?}");
        let stored = summary(&app);
        let reason = stored.reauth_reason.unwrap_or_default();
        assert!(reason.contains("log the account in again"), "{reason}");
        if let TokenFailure::Error { code, .. } = &failure {
            assert!(reason.contains(code.as_str()), "{reason}");
        }
        assert!(app.logs().contains("account needs a new login"));
        // Out of rotation: no further attempt, however many requests come.
        assert_eq!(ask(&app).await, 503);
        assert_eq!(app.mock.state.refresh_calls(), 1);
        assert_no_token_logged(&app);

        // A new login brings it back.
        let exp = chrono::Utc::now().timestamp() + 3600;
        let auth = fake_auth_json("acct-test-1", "dev@example.com", "plus", exp);
        let fresh = auth_json::parse(&auth.to_string()).unwrap();
        app.store.import_account(&fresh).unwrap();
        assert!(eventually(10, || async { ask(&app).await == 200 }).await);
        assert_eq!(summary(&app).reauth_reason, None);
        app.stop().await;
    }
}

#[actix_web::test]
async fn transient_refresh_errors_are_retried_with_backoff_while_the_token_serves() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_skew_secs = 7200;
        s.oauth.refresh_retry_initial_ms = 20;
        s.oauth.refresh_retry_max_secs = 1;
    })
    .await;
    let before = token_version(&app);
    app.mock.state.push_token_failure(TokenFailure::Status(503));
    app.mock.state.push_token_failure(TokenFailure::Garbage);
    assert_eq!(ask(&app).await, 200);
    assert!(
        eventually(10, || async { app.mock.state.refresh_calls() >= 3 }).await,
        "the refresh was not retried"
    );
    assert!(eventually(10, || async { token_version(&app) == before + 1 }).await);
    let stored = summary(&app);
    assert_eq!(stored.shown_state(), "active");
    assert_eq!(
        stored.last_refresh_error, None,
        "a success clears the last error"
    );
    assert_eq!(ask(&app).await, 200);
    assert_no_token_logged(&app);
    app.stop().await;
}

#[actix_web::test]
async fn a_failed_refresh_is_shown_until_one_succeeds() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_skew_secs = 7200;
        s.oauth.refresh_retry_initial_ms = 60_000;
    })
    .await;
    app.mock.state.push_token_failure(TokenFailure::Status(500));
    assert_eq!(ask(&app).await, 200);
    assert!(
        eventually(10, || async { summary(&app).last_refresh_error.is_some() }).await,
        "the failure was not recorded"
    );
    let error = summary(&app).last_refresh_error.unwrap();
    assert!(error.contains("500"), "{error}");
    assert_eq!(summary(&app).shown_state(), "active");
    app.stop().await;
}

#[actix_web::test]
async fn an_access_token_unfit_for_a_header_is_not_served_and_the_rotation_is_kept() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_skew_secs = 7200;
        s.oauth.refresh_retry_initial_ms = 20;
        s.oauth.refresh_retry_max_secs = 1;
        s.oauth.refresh_min_interval_secs = 0;
    })
    .await;
    let before = token_version(&app);
    let original = app.auth_json["tokens"]["access_token"].as_str().unwrap();
    app.mock
        .state
        .push_token_failure(TokenFailure::UnsafeAccessToken);
    assert_eq!(ask(&app).await, 200);
    assert!(eventually(10, || async { token_version(&app) > before }).await);
    // The rotated refresh token was stored (the old one is spent); the access token was not.
    let credentials = app
        .store
        .load_credentials(&app.account_id)
        .unwrap()
        .unwrap();
    assert_eq!(credentials.token_version, before + 1);
    assert_eq!(credentials.access_token.expose_secret(), original);
    // The next refresh (after the backoff pause, on a request) spends the rotated refresh
    // token: no `refresh_token_reused`.
    assert!(
        eventually(10, || async {
            ask(&app).await;
            token_version(&app) >= before + 2
        })
        .await,
        "the refresh was not retried with the rotated refresh token"
    );
    let issued = app.mock.state.issued_tokens();
    assert!(
        eventually(10, || async {
            ask(&app).await == 200 && issued.contains(&bearer_of_last_upstream_call(&app))
        })
        .await,
        "a refreshed token was never served"
    );
    let stored = summary(&app);
    assert_eq!(stored.shown_state(), "active");
    assert_eq!(stored.reauth_reason, None);
    for request in app.mock.state.responses_requests() {
        let bearer = request.header("authorization").unwrap_or_default();
        assert!(!bearer.contains("not a header value"), "{bearer}");
    }
    assert!(app.logs().contains("cannot be sent in a header"));
    assert_no_token_logged(&app);
    app.stop().await;
}

/// The refresh tokens the mock's token endpoint was sent, in order.
fn presented_refresh_tokens(app: &TestApp) -> Vec<String> {
    let grants = app.mock.state.requests().into_iter();
    let grants = grants.filter(|r| r.path.ends_with("/oauth/token"));
    let tokens = grants.filter_map(|r| r.json()?["refresh_token"].as_str().map(str::to_owned));
    tokens.collect()
}

/// No refresh token was presented twice: the issuer never had to answer `refresh_token_reused`.
fn assert_no_refresh_token_reused(app: &TestApp) {
    let presented = presented_refresh_tokens(app);
    let distinct: HashSet<&String> = presented.iter().collect();
    assert_eq!(
        distinct.len(),
        presented.len(),
        "a spent refresh token was presented"
    );
}

fn stored_refresh_token(app: &TestApp) -> String {
    let stored = app.store.refresh_token(&app.account_id).unwrap().unwrap();
    stored.refresh_token.expose_secret().to_owned()
}

/// `POST /admin/v1/accounts/{id}/refresh` with the `admin` token: its status and answer.
async fn refresh_now(app: &TestApp, admin: &str) -> (u16, Value) {
    let path = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    admin_call(app, "POST", &path, admin, None).await
}

/// Fills the disk and has the account refreshed (the issuer's new tokens are larger: storing them
/// needs pages the full disk has not); the account serves with the rotated tokens nonetheless.
pub async fn refresh_onto_a_full_disk(app: &TestApp, admin: &str) {
    app.mock.state.set_token_padding(8 * 1024);
    app.store.simulate_full_disk(true).unwrap();
    let (status, view) = refresh_now(app, admin).await;
    assert_eq!(
        status, 200,
        "the account serves with the rotated tokens: {view}"
    );
    assert_eq!(view["tokens_unsaved"], true, "{view}");
    assert!(app.logs().contains("rotated tokens not stored"));
}

/// Once the write has landed: the newest rotation is stored, unspent, and the account is
/// serving, active, and never needed a human.
async fn assert_rotation_stored(app: &TestApp, version: i64) {
    assert!(
        eventually(20, || async { token_version(app) == version }).await,
        "the held tokens were never stored"
    );
    assert!(!app
        .mock
        .state
        .refresh_token_spent(&stored_refresh_token(app)));
    assert!(app.logs().contains("rotated tokens stored"));
    let stored = summary(app);
    assert_eq!(stored.shown_state(), "active");
    assert_eq!(stored.reauth_reason, None);
    assert!(!app.logs().contains("account needs a new login"));
    assert_eq!(ask(app).await, 200);
    assert_no_refresh_token_reused(app);
    assert_no_token_logged(app);
}

#[actix_web::test]
async fn rotated_tokens_a_locked_store_refuses_serve_from_memory_until_the_write_lands() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_skew_secs = 7200;
        s.oauth.refresh_retry_initial_ms = 20;
        s.oauth.refresh_retry_max_secs = 1;
    })
    .await;
    let before = token_version(&app);
    // Another process holds the store's write lock past the relay's busy timeout.
    let holder = rusqlite::Connection::open(&app.settings.store.path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The token is due: the request is served at once, the refresh runs beside it; its write
    // waits out the busy timeout and fails.
    assert_eq!(ask(&app).await, 200);
    let served = eventually(15, || async {
        let issued = app.mock.state.issued_tokens();
        ask(&app).await == 200 && issued.first() == Some(&bearer_of_last_upstream_call(&app))
    })
    .await;
    assert!(
        served,
        "the rotated access token did not serve while the store was locked"
    );
    assert!(app.logs().contains("rotated tokens not stored"));
    assert_eq!(app.mock.state.refresh_calls(), 1);
    assert_eq!(token_version(&app), before);
    assert_eq!(summary(&app).shown_state(), "active");

    holder.execute_batch("ROLLBACK").unwrap();
    assert_rotation_stored(&app, before + 1).await;
    assert_eq!(
        app.mock.state.refresh_calls(),
        1,
        "stored, not refreshed again"
    );
    app.stop().await;
}

#[actix_web::test]
async fn rotated_tokens_a_full_disk_refuses_serve_and_refresh_from_memory_until_the_write_lands() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_retry_initial_ms = 20;
        s.oauth.refresh_retry_max_secs = 1;
    })
    .await;
    let admin = app.admin_token(AdminScope::Write).await;
    let before = token_version(&app);
    refresh_onto_a_full_disk(&app, &admin).await;
    assert_eq!(token_version(&app), before);
    assert_eq!(ask(&app).await, 200);
    let issued = app.mock.state.issued_tokens();
    assert_eq!(bearer_of_last_upstream_call(&app), issued[0]);

    // Refreshed again while the set is held: with its refresh token, not the spent stored one.
    let (status, view) = refresh_now(&app, &admin).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(app.mock.state.refresh_calls(), 2);
    assert_no_refresh_token_reused(&app);
    assert_eq!(ask(&app).await, 200);
    let issued = app.mock.state.issued_tokens();
    assert_eq!(bearer_of_last_upstream_call(&app), issued[1]);
    assert_eq!(token_version(&app), before, "still not stored");

    app.store.simulate_full_disk(false).unwrap();
    assert_rotation_stored(&app, before + 1).await;
    // The next refresh presents the stored (newest) refresh token.
    let (status, view) = refresh_now(&app, &admin).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["tokens_unsaved"], false, "{view}");
    assert_eq!(token_version(&app), before + 2);
    assert_no_refresh_token_reused(&app);
    app.stop().await;
}

/// A relay whose store refused the rotation it holds (full disk, no write due before the stop).
async fn holding_a_rotation_it_could_not_store() -> (TestApp, String, i64) {
    let app = spawn_app_with(|s| s.oauth.refresh_retry_initial_ms = 60_000).await;
    let admin = app.admin_token(AdminScope::Write).await;
    let before = token_version(&app);
    refresh_onto_a_full_disk(&app, &admin).await;
    (app, admin, before)
}

#[actix_web::test]
async fn a_stopping_relay_writes_held_tokens_once_more_or_says_the_login_is_lost() {
    // The store has room again by the time the relay stops: its last write lands.
    let (app, admin, before) = holding_a_rotation_it_could_not_store().await;
    app.store.simulate_full_disk(false).unwrap();
    let app = app.restart().await;
    assert_eq!(token_version(&app), before + 1);
    let issued = app.mock.state.issued_tokens();
    assert_eq!(ask(&app).await, 200);
    assert_eq!(bearer_of_last_upstream_call(&app), issued[0]);
    assert_eq!(refresh_now(&app, &admin).await.0, 200);
    assert_no_refresh_token_reused(&app);
    app.stop().await;

    // Still full when it stops: the rotation is lost, and the log and the account say so.
    let (app, admin, before) = holding_a_rotation_it_could_not_store().await;
    let app = app.restart().await;
    app.store.simulate_full_disk(false).unwrap();
    let logs = app.logs();
    let lost = logs
        .lines()
        .find(|l| l.contains("rotated tokens lost"))
        .unwrap();
    assert!(
        lost.contains(&app.account_id) && lost.contains("\"level\":\"ERRO\""),
        "{lost}"
    );
    assert_eq!(token_version(&app), before);
    let (status, error) = refresh_now(&app, &admin).await;
    assert_eq!(status, 502, "{error}");
    let recorded = eventually(5, || async { summary(&app).reauth_reason.is_some() }).await;
    assert!(recorded, "the dead login was not recorded");
    let reason = summary(&app).reauth_reason.unwrap_or_default();
    assert!(reason.contains("refresh_token_reused"), "{reason}");
    assert!(reason.contains("rotated tokens not stored"), "{reason}");
    app.stop().await;
}
