//! Privacy of `GET /metrics`: recognizable secrets and content are seeded — a prompt, API keys,
//! the account's tokens and email, an admin token, a model name a client made up — traffic of
//! every kind is driven (successes, a failure, refusals), and none of them appears in a series.

use codex_relay::domain::Limits;
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::{keys::reveal, NewKey};

use crate::helpers::{body, client, read_all, spawn_app_seeded, TestApp};
use crate::metrics_requests::Scrape;
use crate::mock_upstream::Scripted;

const PROMPT: &str = "PROMPT-CANARY-91c4e2 what is the launch code";
const ANSWER: &str = "Hello from the mock upstream.";
const WRONG_KEY: &str = "sk-relay-WRONG-KEY-CANARY-7731";
const EMAIL: &str = "dev@example.com";

#[actix_web::test]
async fn no_secret_or_content_appears_in_any_series() {
    let app = spawn_app_seeded(
        // Per-key families on: the most labels a relay can have.
        |s| s.metrics.per_key = true,
        |store| {
            let once = NewKey {
                name: "once".into(),
                limits: Limits {
                    rpm: Some(1),
                    burst: Some(1),
                    ..Limits::default()
                },
                ..NewKey::default()
            };
            vec![reveal(&store.create_key_with(&once).unwrap()).to_owned()]
        },
    )
    .await;
    let admin = app.admin_token(AdminScope::Read).await;
    let attacker = format!("gpt-attacker-{}", rand::random::<u64>());
    let tokens = &app.auth_json["tokens"];
    let mut secrets: Vec<String> = ["id_token", "access_token", "refresh_token"]
        .iter()
        .map(|name| tokens[*name].as_str().unwrap().to_owned())
        .collect();
    secrets.extend([app.key.clone(), app.seeded[0].clone(), admin.clone()]);
    secrets.extend([PROMPT, ANSWER, WRONG_KEY, EMAIL].map(str::to_owned));
    secrets.push(attacker.clone());

    drive_every_kind_of_request(&app, &admin, &attacker).await;

    let scrape = Scrape::of(&app, &admin).await;
    // The traffic is there …
    assert!(scrape.count("codex_relay_requests_total", &[]) >= 8.0);
    assert!(scrape.count("codex_relay_limiter_rejections_total", &[]) >= 1.0);
    assert!(scrape.count("codex_relay_key_requests_total", &[]) >= 1.0);
    // … and nothing it carried.
    for secret in &secrets {
        assert!(
            !scrape.text.contains(secret.as_str()),
            "a secret reached /metrics: {secret}\n{}",
            scrape.text
        );
    }
    for secret in secrets.iter().filter(|s| s.len() > 40) {
        assert!(
            !scrape.text.contains(&secret[..24]),
            "a fragment of a secret reached /metrics"
        );
    }
    app.stop().await;
}

/// Streamed and JSON answers carrying [`PROMPT`], an upstream failure echoing it, a made-up model,
/// a wrong key, a rate refusal of the seeded key, and an admin call with `admin`.
async fn drive_every_kind_of_request(app: &TestApp, admin: &str, attacker: &str) {
    for stream in [true, false] {
        let mut answer = app
            .responses()
            .send_json(&body("gpt-5.5", PROMPT, stream))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        read_all(&mut answer).await;
    }
    app.mock.state.push_scripted(Scripted::Status {
        status: 500,
        body: PROMPT.into(),
        headers: vec![],
    });
    let failed = app
        .responses()
        .send_json(&body("gpt-5.5", PROMPT, false))
        .await
        .unwrap();
    assert!(failed.status().is_server_error(), "{}", failed.status());
    let unknown = app
        .responses()
        .send_json(&body(attacker, PROMPT, true))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let wrong = client()
        .post(app.url("/v1/responses"))
        .bearer_auth(WRONG_KEY)
        .send_json(&body("gpt-5.5", PROMPT, false))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let once = &app.seeded[0];
    for expected in [200, 429] {
        let mut answer = app
            .responses_as(once)
            .send_json(&body("gpt-5.5", PROMPT, false))
            .await
            .unwrap();
        assert_eq!(answer.status(), expected);
        read_all(&mut answer).await;
    }
    let listed = app
        .admin("GET", "/admin/v1/accounts", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
}
