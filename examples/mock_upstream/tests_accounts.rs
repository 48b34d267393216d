//! Per-account scripts: what the pool tests rely on.

use super::*;

#[actix_rt::test]
async fn each_account_answers_by_its_own_script_and_is_counted() {
    let mock = start().await;
    // `post_responses` speaks for account "acct-1".
    mock.state.push_scripted_for(
        "acct-1",
        Scripted::Status {
            status: 429,
            body: "{}".into(),
            headers: vec![],
        },
    );
    mock.state.set_used_percent_for("acct-1", 55.0, 7.5);
    mock.state
        .push_scripted_for("acct-other", Scripted::CutAfterEvents(0));
    let (status, _, _) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, headers, _) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-codex-primary-used-percent"], "55");
    assert_eq!(headers["x-codex-secondary-used-percent"], "7.5");
    assert_eq!(mock.state.responses_for("acct-1"), 2);
    assert_eq!(mock.state.responses_for("acct-other"), 0);
    mock.stop().await;
}

#[actix_rt::test]
async fn a_standing_error_answers_until_cleared_and_also_answers_the_model_list() {
    let mock = start().await;
    let down = Scripted::Status {
        status: 503,
        body: "{\"detail\":\"down\"}".into(),
        headers: vec![],
    };
    mock.state.set_standing_for("acct-1", Some(down));
    for _ in 0..2 {
        let (status, _, _) = post_responses(&mock, &codex_body("hi")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let models = |mock: &MockUpstream| {
        awc::Client::default()
            .get(format!("{}/models?client_version=0.125.0", mock.url()))
            .insert_header(("chatgpt-account-id", "acct-1"))
            .send()
    };
    assert_eq!(models(&mock).await.unwrap().status(), 503);
    mock.state.set_standing_for("acct-1", None);
    assert_eq!(models(&mock).await.unwrap().status(), 200);
    let (status, _, _) = post_responses(&mock, &codex_body("hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.state.models_requests_for("acct-1"), 2);
    mock.stop().await;
}
