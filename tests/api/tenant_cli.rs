//! `codex-relay tenant …` and the governance options of `codex-relay key create`, as operators
//! script them: what is created is printed alone on stdout.

use serde_json::Value;

use crate::cli::{relay, run, stderr, stdout};

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap()
}

#[test]
fn tenants_and_keys_with_limits_are_created_listed_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = run(relay(dir.path()).args([
        "tenant",
        "create",
        "search",
        "--rpm",
        "60",
        "--max-concurrent",
        "4",
        "--daily-tokens",
        "100000",
        "--monthly-tokens",
        "2000000",
        "--hide-models",
        "gpt-5.2",
    ]));
    assert!(tenant.status.success(), "{}", stderr(&tenant));
    let tenant_id = stdout(&tenant);
    assert_eq!(
        tenant_id.len(),
        36,
        "stdout is the tenant id alone: {tenant_id:?}"
    );

    let key = run(relay(dir.path()).args([
        "key",
        "create",
        "--name",
        "ci",
        "--tenant",
        "search",
        "--rpm",
        "10",
        "--burst",
        "5",
        "--max-concurrent",
        "2",
        "--daily-tokens",
        "1000",
        "--monthly-tokens",
        "20000",
        "--models",
        "gpt-5.5,codex",
        "--expires",
        "2099-01-01T00:00:00Z",
    ]));
    assert!(key.status.success(), "{}", stderr(&key));
    let text = stdout(&key);
    assert!(
        text.starts_with("sk-relay-") && !text.contains(char::is_whitespace),
        "{text:?}"
    );
    assert!(
        !stderr(&key).contains(&text),
        "the key is printed once, on stdout"
    );

    let keys = json(&run(relay(dir.path()).args(["key", "list", "--json"])));
    let listed = &keys[0];
    assert_eq!(listed["tenant"], "search");
    assert_eq!(listed["models"], serde_json::json!(["gpt-5.5", "codex"]));
    assert_eq!(listed["limits"]["rpm"], 10);
    assert_eq!(listed["limits"]["burst"], 5);
    assert_eq!(listed["limits"]["max_concurrent"], 2);
    assert_eq!(listed["limits"]["daily_tokens"], 1000);
    assert_eq!(listed["limits"]["monthly_tokens"], 20000);
    assert_eq!(listed["expires_at"], 4_070_908_800_i64);
    assert!(
        !keys.to_string().contains(&text),
        "listings never show the key"
    );

    let tenants = json(&run(relay(dir.path()).args(["tenant", "list", "--json"])));
    assert_eq!(tenants[0]["id"], tenant_id.as_str());
    assert_eq!(tenants[0]["limits"]["rpm"], 60);
    assert_eq!(tenants[0]["hidden_models"], serde_json::json!(["gpt-5.2"]));
    assert_eq!(tenants[0]["active_keys"], 1);
    let table = run(relay(dir.path()).args(["tenant", "list"]));
    assert!(stdout(&table).contains("search"));

    // Refusals: a duplicate tenant, an unknown tenant, a past expiry, a burst without a rate,
    // a zero limit, and deleting a tenant that still has keys.
    for args in [
        &["tenant", "create", "search"][..],
        &["key", "create", "--name", "x", "--tenant", "nope"],
        &[
            "key",
            "create",
            "--name",
            "x",
            "--expires",
            "2001-01-01T00:00:00Z",
        ],
        &["key", "create", "--name", "x", "--expires", "tomorrow"],
        &["key", "create", "--name", "x", "--burst", "5"],
        &["key", "create", "--name", "x", "--rpm", "0"],
        &["key", "create", "--name", "x", "--models", "a,,b"],
        &["tenant", "delete", "search"],
    ] {
        let output = run(relay(dir.path()).args(args));
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(
            stdout(&output).is_empty(),
            "{args:?} printed {}",
            stdout(&output)
        );
    }
    let revoked = run(relay(dir.path()).args(["key", "revoke", "ci"]));
    assert!(revoked.status.success());
    let deleted = run(relay(dir.path()).args(["tenant", "delete", "search"]));
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let tenants = json(&run(relay(dir.path()).args(["tenant", "list", "--json"])));
    assert_eq!(tenants, serde_json::json!([]));
}
