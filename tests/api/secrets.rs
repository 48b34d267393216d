//! Privacy: recognizable secrets and content are seeded, every kind of request is made, and none
//! of them appears in a log line or an error body.

use serde_json::json;

use crate::helpers::{body, client, read_all, spawn_app};
use crate::mock_upstream::Scripted;

const PROMPT: &str = "PROMPT-CANARY-7f3a91 tell me a secret";
const ANSWER: &str = "Hello from the mock upstream.";
const WRONG_KEY: &str = "sk-relay-WRONG-KEY-CANARY-5521";

#[actix_web::test]
async fn no_secret_or_content_reaches_logs_or_error_bodies() {
    let app = spawn_app().await;
    let tokens = &app.auth_json["tokens"];
    let mut secrets: Vec<String> = ["id_token", "access_token", "refresh_token"]
        .iter()
        .map(|name| tokens[*name].as_str().unwrap().to_owned())
        .collect();
    secrets.push(app.key.clone());
    secrets.push(WRONG_KEY.to_owned());
    secrets.push(PROMPT.to_owned());
    secrets.push(ANSWER.to_owned());
    secrets.push("dev@example.com".to_owned());

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
