//! The mock's own tests of per-plan catalogs: an account given its own catalog sees it on
//! `/models`, and `/responses` refuses it the other models as the backend does.

use super::*;

#[actix_rt::test]
async fn an_account_with_its_own_catalog_is_served_only_those_models() {
    let mock = start().await;
    mock.state.set_models_for("acct-1", &["gpt-5.5", "gpt-6"]);
    let mut resp = awc::Client::default()
        .get(format!("{}/models?client_version=0.171.0", mock.url()))
        .insert_header(("authorization", format!("Bearer {}", access_token())))
        .insert_header(("chatgpt-account-id", "acct-1"))
        .send()
        .await
        .unwrap();
    let catalog: Value = resp.json().await.unwrap();
    let slugs: Vec<_> = catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["gpt-5.5", "gpt-6"]);

    let mut body = codex_body("hi");
    body["model"] = json!("gpt-5.4-mini");
    let (status, _, bytes) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&bytes).contains("not supported"));
    body["model"] = json!("gpt-6");
    let (status, _, _) = post_responses(&mock, &body).await;
    assert_eq!(status, StatusCode::OK);
    mock.stop().await;
}
