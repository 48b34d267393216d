//! The mock's own tests of its OAuth side and catalog: token refresh and reuse, the
//! authorization-code grant, `/models`, and the fake auth.json (helpers from `tests.rs`).

use super::*;

#[actix_rt::test]
async fn refresh_tokens_rotate_and_reuse_is_refused() {
    let mock = start().await;
    let auth = fake_auth_json("acct-9", "nine@example.com", "pro", unix_now() + 60);
    let first_rt = auth["tokens"]["refresh_token"].as_str().unwrap();
    let refresh = |rt: &str| {
        awc::Client::default()
            .post(format!("{}/oauth/token", mock.url()))
            .send_json(&json!({
                "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
                "grant_type": "refresh_token",
                "refresh_token": rt,
            }))
    };

    let mut resp = refresh(first_rt).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set: Value = resp.json().await.unwrap();
    let second_rt = set["refresh_token"].as_str().unwrap();
    assert!(second_rt.starts_with("rt_") && second_rt != first_rt);
    let access = set["access_token"].as_str().unwrap();
    assert_eq!(mock.state.issued_tokens(), [access.to_owned()]);
    let claims = jwt_payload(set["id_token"].as_str().unwrap()).unwrap();
    let auth_claims = &claims["https://api.openai.com/auth"];
    assert_eq!(auth_claims["chatgpt_account_id"], "acct-9");
    assert_eq!(auth_claims["chatgpt_plan_type"], "pro");
    assert_eq!(claims["email"], "nine@example.com");
    let exp = jwt_payload(access).unwrap()["exp"].as_i64().unwrap();
    assert!((unix_now() + 3500..=unix_now() + 3700).contains(&exp));

    let mut reused = refresh(first_rt).await.unwrap();
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let error: Value = reused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "refresh_token_reused");

    assert_eq!(refresh(second_rt).await.unwrap().status(), StatusCode::OK);
    let mut unknown = refresh("not-a-refresh-token").await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "refresh_token_invalidated");
    mock.stop().await;
}

#[actix_rt::test]
async fn authorization_code_grant_issues_tokens_for_the_oauth_account() {
    let mock = start().await;
    let mut resp = awc::Client::default()
        .post(format!("{}/oauth/token", mock.url()))
        .send_form(&[
            ("grant_type", "authorization_code"),
            ("code", "code-123"),
            ("redirect_uri", "http://localhost:1455/auth/callback"),
            ("client_id", "app_EMoamEEZ73f0CkXaXp7hrann"),
            ("code_verifier", "verifier"),
        ])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set: Value = resp.json().await.unwrap();
    let claims = jwt_payload(set["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        claims["https://api.openai.com/auth"]["chatgpt_account_id"],
        "acct-mock-oauth"
    );
    assert!(set["refresh_token"].as_str().unwrap().starts_with("rt_"));
    mock.stop().await;
}

#[actix_rt::test]
async fn serves_the_model_catalog_and_refuses_websockets_and_unknown_paths() {
    let mock = start().await;
    let client = awc::Client::default();
    let mut resp = client
        .get(format!("{}/models?client_version=0.171.0", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("etag").unwrap(), "\"mock-etag-1\"");
    let catalog: Value = resp.json().await.unwrap();
    let slugs: Vec<_> = catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["gpt-5.5", "gpt-5.4-mini"]);
    for model in catalog["models"].as_array().unwrap() {
        for field in models::REQUIRED_CATALOG_FIELDS {
            assert!(
                model.get(field).is_some(),
                "{} lacks {field}",
                model["slug"]
            );
        }
    }
    assert_eq!(mock.state.requests()[0].query, "client_version=0.171.0");

    // Without `OpenAI-Beta: responses_websockets=…` (tests_websocket.rs has the rest).
    let ws = client
        .get(format!("{}/responses", mock.url()))
        .insert_header(("upgrade", "websocket"))
        .insert_header(("connection", "upgrade"))
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), StatusCode::UPGRADE_REQUIRED);

    let mut missing = client
        .get(format!("{}/nope", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let answer: Value = missing.json().await.unwrap();
    assert_eq!(answer, json!({"detail": "Not Found"}));
    mock.stop().await;
}

#[test]
fn fake_auth_json_has_the_codex_cli_shape() {
    let auth = fake_auth_json("acct-1", "dev@example.com", "plus", 1_900_000_000);
    let keys: Vec<_> = auth.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    );
    assert_eq!(auth["auth_mode"], "chatgpt");
    assert_eq!(auth["OPENAI_API_KEY"], Value::Null);
    assert_eq!(auth["tokens"]["account_id"], "acct-1");
    assert!(chrono::DateTime::parse_from_rfc3339(auth["last_refresh"].as_str().unwrap()).is_ok());

    let access = auth["tokens"]["access_token"].as_str().unwrap();
    let header = access.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&decode_segment(header)).unwrap();
    assert_eq!(header, json!({"alg": "none", "typ": "JWT"}));
    assert!(access.ends_with(".sig"));
    for token in ["id_token", "access_token"] {
        let claims = jwt_payload(auth["tokens"][token].as_str().unwrap()).unwrap();
        assert_eq!(claims["email"], "dev@example.com");
        assert_eq!(
            claims["https://api.openai.com/profile"]["email"],
            "dev@example.com"
        );
        let auth_claims = &claims["https://api.openai.com/auth"];
        assert_eq!(auth_claims["chatgpt_plan_type"], "plus");
        assert_eq!(auth_claims["chatgpt_account_id"], "acct-1");
        assert_eq!(auth_claims["chatgpt_account_is_fedramp"], false);
        assert!(auth_claims["chatgpt_user_id"].is_string() && auth_claims["user_id"].is_string());
        assert_eq!(claims["exp"], 1_900_000_000);
        assert!(claims["iat"].is_i64());
    }
}

fn decode_segment(segment: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap()
}
