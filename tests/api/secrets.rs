//! Privacy: recognizable secrets and content are seeded, every kind of request is made, and none
//! of them appears in a log line or an error body; tokens an issuer echoes in its errors reach
//! neither the logs, the admin API, the store nor the CLI.

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::json;

use crate::helpers::{admin_call, body, client, eventually, read_all, spawn_app, TestApp};
use crate::mock_upstream::{Scripted, TokenFailure};

const PROMPT: &str = "PROMPT-CANARY-7f3a91 tell me a secret";
const ANSWER: &str = "Hello from the mock upstream.";
const WRONG_KEY: &str = "sk-relay-WRONG-KEY-CANARY-5521";

#[actix_web::test]
async fn no_secret_or_content_reaches_logs_or_error_bodies() {
    let app = spawn_app().await;
    let tokens = &app.auth_json["tokens"];
    let mut secrets = app.seeded_secrets();
    secrets.push(WRONG_KEY.to_owned());
    secrets.push(PROMPT.to_owned());
    secrets.push(ANSWER.to_owned());

    let mut bodies = Vec::new();
    // Successful streams and JSON answers.
    for stream in [true, false] {
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", PROMPT, stream))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        read_all(&mut response).await;
    }
    // Errors of every layer: auth, validation, model, upstream 400 echoing the prompt, 500.
    let mut wrong = client()
        .post(app.url("/v1/responses"))
        .bearer_auth(WRONG_KEY)
        .send_json(&body("gpt-5.5", PROMPT, true))
        .await
        .unwrap();
    bodies.push(wrong.body().await.unwrap());
    let mut bad = app
        .responses()
        .send_body(format!("{{\"model\": \"{PROMPT}"))
        .await
        .unwrap();
    bodies.push(bad.body().await.unwrap());
    let mut unknown = app
        .responses()
        .send_json(&body("no-such-model", PROMPT, true))
        .await
        .unwrap();
    bodies.push(unknown.body().await.unwrap());
    let access = tokens["access_token"].as_str().unwrap();
    let echo = json!({"detail": format!("bad request for token {access}")}).to_string();
    app.mock.state.push_scripted(Scripted::Status {
        status: 400,
        body: echo,
        headers: vec![],
    });
    let mut rejected = app
        .responses()
        .send_json(&body("gpt-5.5", PROMPT, true))
        .await
        .unwrap();
    bodies.push(rejected.body().await.unwrap());
    app.mock.state.push_scripted(Scripted::Status {
        status: 500,
        body: PROMPT.into(),
        headers: vec![],
    });
    let mut failed = app
        .responses()
        .send_json(&body("gpt-5.5", PROMPT, false))
        .await
        .unwrap();
    bodies.push(failed.body().await.unwrap());

    let logs = app.logs();
    assert!(
        logs.lines().count() >= 7,
        "the requests were logged:\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {secret}"
        );
        for body in &bodies {
            let text = String::from_utf8_lossy(body);
            assert!(
                !text.contains(secret.as_str()),
                "a secret reached an error body: {text}"
            );
        }
    }
    // Also not as a prefix or a fragment: e.g. the first 12 characters of each token.
    for secret in secrets.iter().filter(|s| s.len() > 40) {
        assert!(
            !logs.contains(&secret[..24]),
            "a fragment of a secret reached the logs"
        );
    }
    app.stop().await;
}

/// The refresh error and the re-login reason as the SQLite file holds them.
fn stored_refresh_errors(app: &TestApp) -> (String, String) {
    let db = rusqlite::Connection::open(&app.settings.store.path).unwrap();
    db.query_row(
        "SELECT COALESCE(last_refresh_error, ''), COALESCE(reauth_reason, '') FROM accounts",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

/// `codex-relay account list --json` on the app's store.
fn account_list_json(app: &TestApp) -> String {
    let dir = app.settings.store.path.parent().unwrap();
    let output = crate::cli::run(crate::cli::relay(dir).args(["account", "list", "--json"]));
    assert!(output.status.success(), "{}", crate::cli::stderr(&output));
    crate::cli::stdout(&output)
}

#[actix_web::test]
async fn tokens_an_issuer_echoes_in_its_errors_are_redacted_wherever_they_are_shown() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Write).await;
    let tokens = &app.auth_json["tokens"];
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = format!("/admin/v1/accounts/{}/refresh", app.account_id);
    let account = format!("/admin/v1/accounts/{}", app.account_id);
    let mut shown = Vec::new();
    // A 200 that is no token set (a transient failure: the last refresh error), then a 401 (the
    // login is dead: the reason to log in again).
    for status in [200, 401] {
        let echo = TokenFailure::Echo {
            status,
            access_token: access_token.clone(),
        };
        app.mock.state.push_token_failure(echo);
        let (answered, error) = admin_call(&app, "POST", &refresh, &admin, None).await;
        assert_eq!(answered, 502, "{error}");
        let recorded = eventually(5, || async {
            let (error, reason) = stored_refresh_errors(&app);
            !error.is_empty() && (status == 200 || !reason.is_empty())
        })
        .await;
        assert!(recorded, "the failure was not stored");
        let (_, view) = admin_call(&app, "GET", &account, &admin, None).await;
        let (_, list) = admin_call(&app, "GET", "/admin/v1/accounts", &admin, None).await;
        let (error_column, reason_column) = stored_refresh_errors(&app);
        shown.extend([error, view, list].map(|v| v.to_string()));
        shown.extend([error_column, reason_column]);
    }
    assert_eq!(
        app.mock.state.refresh_calls(),
        2,
        "both answers were echoes"
    );
    let (_, reason) = stored_refresh_errors(&app);
    assert!(
        reason.contains("invalid_grant"),
        "the echo was not seen: {reason}"
    );
    shown.push(account_list_json(&app));
    shown.push(app.logs());
    for text in &shown {
        for secret in [&refresh_token, &access_token] {
            // Also not lower-cased (the code is), nor a fragment of it.
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains(&secret.to_ascii_lowercase()), "{text}");
            assert!(!text.contains(&secret[..24]), "{text}");
        }
    }
    app.stop().await;
}
