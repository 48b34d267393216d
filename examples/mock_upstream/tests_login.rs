//! The mock's own tests of its login side and scripted token endpoint: the authorize redirect,
//! PKCE-checked single-use codes, the device-code endpoints, scripted refresh failures, token
//! lifetime, and revoked access tokens.

use sha2::{Digest, Sha256};

use super::*;

fn challenge(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn exchange(mock: &MockUpstream, code: &str, verifier: &str, redirect: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .post(format!("{}/oauth/token", mock.url()))
        .send_form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", "app_EMoamEEZ73f0CkXaXp7hrann"),
            ("code_verifier", verifier),
        ])
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[actix_rt::test]
async fn authorize_redirects_with_a_single_use_pkce_checked_code() {
    let mock = start().await;
    let redirect = "http://localhost:1455/auth/callback";
    let url = format!(
        "{}/oauth/authorize?response_type=code&client_id=c&redirect_uri={}&scope=openid&code_challenge={}&code_challenge_method=S256&state=st1",
        mock.url(),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
        challenge("verifier-1"),
    );
    let client = awc::Client::builder().disable_redirects().finish();
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location =
        url::Url::parse(resp.headers().get("location").unwrap().to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st1");
    let code = pairs["code"].clone();
    assert_eq!(
        exchange(&mock, &code, "wrong", redirect).await.0,
        400,
        "PKCE is checked"
    );
    let resp = client.get(&url).send().await.unwrap();
    let location =
        url::Url::parse(resp.headers().get("location").unwrap().to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, set) = exchange(&mock, &code, "verifier-1", redirect).await;
    assert_eq!(status, 200);
    let claims = jwt_payload(set["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        claims["https://api.openai.com/auth"]["chatgpt_account_id"],
        "acct-mock-oauth"
    );
    assert_eq!(
        exchange(&mock, &code, "verifier-1", redirect).await.0,
        400,
        "single use"
    );
    assert_eq!(mock.state.code_exchanges(), 3);

    mock.state.script_login(|s| {
        s.authorize_error = Some(("access_denied".into(), "missing_codex_entitlement".into()));
    });
    let resp = client.get(&url).send().await.unwrap();
    let location = resp.headers().get("location").unwrap().to_str().unwrap();
    assert!(
        location.contains("error=access_denied") && location.contains("missing_codex_entitlement")
    );
    assert_eq!(
        client
            .get(format!("{}/oauth/authorize", mock.url()))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn device_codes_stay_pending_then_follow_the_script() {
    let mock = start().await;
    mock.state.script_login(|s| s.pending_polls = 1);
    let client = awc::Client::default();
    let mut resp = client
        .post(format!("{}/api/accounts/deviceauth/usercode", mock.url()))
        .send_json(&json!({"client_id": "c"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let code: Value = resp.json().await.unwrap();
    assert!(code["interval"].is_string(), "the interval is a string");
    let poll = || {
        client
            .post(format!("{}/api/accounts/deviceauth/token", mock.url()))
            .send_json(
                &json!({"device_auth_id": code["device_auth_id"], "user_code": code["user_code"]}),
            )
    };
    assert_eq!(poll().await.unwrap().status(), StatusCode::FORBIDDEN);
    let mut approved = poll().await.unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    let grant: Value = approved.json().await.unwrap();
    let verifier = grant["code_verifier"].as_str().unwrap();
    assert_eq!(grant["code_challenge"], challenge(verifier));
    let redirect = format!("{}/deviceauth/callback", mock.url());
    let (status, _) = exchange(
        &mock,
        grant["authorization_code"].as_str().unwrap(),
        verifier,
        &redirect,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mock.state.device_polls(), 2);

    mock.state
        .script_login(|s| s.outcome = DeviceOutcome::Denied);
    let mut denied = poll().await.unwrap();
    assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "access_denied");
    mock.state.script_login(|s| s.usercode_not_found = true);
    let resp = client
        .post(format!("{}/api/accounts/deviceauth/usercode", mock.url()))
        .send_json(&json!({"client_id": "c"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    mock.stop().await;
}

#[actix_rt::test]
async fn refresh_failures_lifetime_and_revocation_are_scriptable() {
    let mock = start().await;
    mock.state.set_token_lifetime(5);
    mock.state.push_token_failure(TokenFailure::Error {
        status: 401,
        code: "refresh_token_expired".into(),
    });
    mock.state.push_token_failure(TokenFailure::Status(502));
    mock.state.push_token_failure(TokenFailure::Garbage);
    let auth = fake_auth_json("acct-s", "s@example.com", "plus", unix_now() + 60);
    let rt = auth["tokens"]["refresh_token"].as_str().unwrap();
    let refresh = || {
        awc::Client::default()
            .post(format!("{}/oauth/token", mock.url()))
            .send_json(
                &json!({"client_id": "c", "grant_type": "refresh_token", "refresh_token": rt}),
            )
    };
    let mut first = refresh().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], "refresh_token_expired");
    assert_eq!(refresh().await.unwrap().status(), StatusCode::BAD_GATEWAY);
    let mut garbage = refresh().await.unwrap();
    assert!(garbage.json::<Value>().await.is_err());
    let mut ok = refresh().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let set: Value = ok.json().await.unwrap();
    let access = set["access_token"].as_str().unwrap();
    let exp = jwt_payload(access).unwrap()["exp"].as_i64().unwrap();
    assert!((unix_now() + 3..=unix_now() + 6).contains(&exp));
    assert_eq!(mock.state.refresh_calls(), 4);
    assert!(mock.state.refresh_token_spent(rt));

    let ask = |token: String| {
        awc::Client::default()
            .post(format!("{}/responses", mock.url()))
            .bearer_auth(token)
            .insert_header(("chatgpt-account-id", "acct-s"))
            .send_json(&codex_body("hi"))
    };
    assert_eq!(
        ask(access.to_owned()).await.unwrap().status(),
        StatusCode::OK
    );
    mock.state.revoke_access_token(access);
    assert_eq!(
        ask(access.to_owned()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = fake_auth_json("acct-s", "s@example.com", "plus", unix_now() - 1);
    let expired = expired["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ask(expired).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    mock.stop().await;
}
