//! `codex-relay admin-token …` against the real binary, and a running server that follows it.

use crate::cli::{relay, run, serve, stderr, stdout};
use crate::helpers::{client, eventually};
use crate::mock_upstream::MockUpstream;

#[actix_web::test]
async fn admin_tokens_are_created_listed_and_revoked_and_the_server_follows() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output =
        run(relay(dir.path()).args(["admin-token", "create", "--scope", "read", "--name", "ci"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output);
    assert!(
        token.starts_with("sk-relay-admin-"),
        "only the token on stdout"
    );
    assert!(!stderr(&output).contains(&token));

    let listed = run(relay(dir.path()).args(["admin-token", "list", "--json"]));
    let text = stdout(&listed);
    assert!(!text.contains(&token));
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows[0]["name"], "ci");
    assert_eq!(rows[0]["scope"], "read");

    let bad = run(relay(dir.path()).args(["admin-token", "create", "--scope", "root"]));
    assert!(!bad.status.success());

    let served = serve(dir.path(), &mock);
    let url = format!("http://{}/admin/v1/accounts", served.admin_addr);
    let response = client().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let revoked = run(relay(dir.path()).args(["admin-token", "revoke", "ci"]));
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let refused = eventually(5, || async {
        let response = client().get(&url).bearer_auth(&token).send().await;
        response.is_ok_and(|r| r.status() == 401)
    })
    .await;
    assert!(refused, "the server kept accepting a revoked admin token");
}
