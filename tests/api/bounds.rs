//! What operators set is bounded: every limit has an upper bound refused by field name (400 on
//! the admin API, a message on the command line), names and labels refuse control characters,
//! and the command line never prints a raw control byte from the store.

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::cli::{relay, run, stderr, stdout, write_auth};
use crate::helpers::{admin_call as send, spawn_app};

/// The `param` of a refused admin call, checking it was a 400.
async fn refused_param(
    app: &crate::helpers::TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> Option<String> {
    let (status, answer) = send(app, method, path, token, Some(body.clone())).await;
    assert_eq!(status, 400, "{method} {path} {body}: {answer}");
    answer["error"]["param"].as_str().map(str::to_owned)
}

#[actix_web::test]
async fn the_admin_api_refuses_limits_past_their_bounds_and_names_with_control_characters() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let key_cases = [
        (
            json!({"name": "k", "rpm": 10, "burst": 4_294_967_295_u64}),
            "burst",
        ),
        (
            json!({"name": "k", "rpm": 10, "burst": 4_294_967_296_u64}),
            "burst",
        ),
        (json!({"name": "k", "rpm": 10, "burst": 601}), "burst"),
        (json!({"name": "k", "rpm": 1_000_001}), "rpm"),
        (json!({"name": "k", "rpm": -1}), "rpm"),
        (
            json!({"name": "k", "max_concurrent": 100_001}),
            "max_concurrent",
        ),
        (
            json!({"name": "k", "daily_tokens": 1_000_000_000_001_u64}),
            "daily_tokens",
        ),
        (
            json!({"name": "k", "monthly_tokens": u64::MAX}),
            "monthly_tokens",
        ),
        (json!({"name": "a\u{1b}[2Jb"}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({"name": "k", "models": ["gpt\u{7}"]}), "models"),
    ];
    for (body, param) in key_cases {
        let got = refused_param(&app, "POST", "/admin/v1/keys", &write, body.clone()).await;
        assert_eq!(got.as_deref(), Some(param), "{body}");
    }
    let tenant = json!({"name": "bad\u{7f}name"});
    let got = refused_param(&app, "POST", "/admin/v1/tenants", &write, tenant).await;
    assert_eq!(got.as_deref(), Some("name"));
    let tenant = json!({"name": "t", "daily_tokens": 10_000_000_000_000_u64});
    let got = refused_param(&app, "POST", "/admin/v1/tenants", &write, tenant).await;
    assert_eq!(got.as_deref(), Some("daily_tokens"));

    let (status, key) = send(
        &app,
        "POST",
        "/admin/v1/keys",
        &write,
        Some(json!({"name": "k", "rpm": 10, "burst": 600})),
    )
    .await;
    assert_eq!(
        status, 201,
        "the largest burst is an hour of the rate: {key}"
    );
    let path = format!("/admin/v1/keys/{}", key["id"].as_str().unwrap());
    let got = refused_param(
        &app,
        "PATCH",
        &path,
        &write,
        json!({"max_concurrent": 100_001}),
    )
    .await;
    assert_eq!(got.as_deref(), Some("max_concurrent"));
    let got = refused_param(&app, "PATCH", &path, &write, json!({"rpm": 5})).await;
    assert_eq!(
        got.as_deref(),
        Some("burst"),
        "a smaller rate leaves the burst too large"
    );

    let label = "/admin/v1/accounts?label=evil%1B%5B31m";
    let (status, answer) = send(&app, "POST", label, &write, Some(app.auth_json.clone())).await;
    assert_eq!(
        (status, answer["error"]["param"].as_str()),
        (400, Some("label"))
    );
    let login = json!({"label": "x\u{7}"});
    let got = refused_param(&app, "POST", "/admin/v1/logins/device", &write, login).await;
    assert_eq!(got.as_deref(), Some("label"));
    app.stop().await;
}

/// A refused command: fails, names `field` on stderr and prints nothing on stdout.
fn refused(dir: &std::path::Path, args: &[&str], field: &str) -> String {
    let output = run(relay(dir).args(args));
    assert!(!output.status.success(), "{args:?} was accepted");
    let message = stderr(&output);
    assert!(message.contains(field), "{args:?}: {message}");
    assert!(stdout(&output).is_empty(), "{args:?}");
    message
}

#[test]
fn the_command_line_refuses_limits_past_their_bounds_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let message = refused(
        d,
        &[
            "key",
            "create",
            "--name",
            "k",
            "--rpm",
            "10",
            "--burst",
            "4294967295",
        ],
        "burst",
    );
    assert!(message.contains("1 to 1000000"), "{message}");
    refused(
        d,
        &[
            "key", "create", "--name", "k", "--rpm", "10", "--burst", "601",
        ],
        "burst",
    );
    refused(
        d,
        &["key", "create", "--name", "k", "--rpm", "99999999999"],
        "rpm",
    );
    refused(
        d,
        &[
            "key",
            "create",
            "--name",
            "k",
            "--max-concurrent",
            "4294967295",
        ],
        "max_concurrent",
    );
    refused(
        d,
        &[
            "tenant",
            "create",
            "t",
            "--daily-tokens",
            "18446744073709551615",
        ],
        "daily_tokens",
    );
    refused(
        d,
        &["tenant", "create", "t", "--monthly-tokens", "1000000000001"],
        "monthly_tokens",
    );
    let keys = stdout(&run(relay(d).args(["key", "list", "--json"])));
    assert_eq!(keys, "[]", "nothing was created");

    assert!(
        run(relay(d).args(["key", "create", "--name", "k", "--rpm", "10"]))
            .status
            .success()
    );
    refused(d, &["key", "update", "k", "--rpm", "1000001"], "rpm");
    let (auth, _) = write_auth(d, "auth.json", "acct-bounds-1", "b@example.com");
    let id = stdout(&run(relay(d).args(["account", "import"]).arg(&auth)));
    refused(
        d,
        &["account", "set", &id, "--weight", "4294967295"],
        "weight",
    );
    refused(d, &["account", "set", &id, "--weight", "0"], "weight");
    refused(
        d,
        &["account", "set", &id, "--priority", "-5000"],
        "priority",
    );
    refused(
        d,
        &["account", "set", &id, "--max-in-flight", "100001"],
        "max_in_flight",
    );
    assert!(run(relay(d).args([
        "account",
        "set",
        &id,
        "--weight",
        "1000",
        "--priority",
        "-1000"
    ]))
    .status
    .success());
}

#[test]
fn names_with_control_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let evil = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}";
    refused(d, &["key", "create", "--name", evil], "name");
    refused(d, &["tenant", "create", evil], "name");
    refused(
        d,
        &["admin-token", "create", "--scope", "read", "--name", evil],
        "--name",
    );
    let (auth, _) = write_auth(d, "auth.json", "acct-names-1", "n@example.com");
    refused(
        d,
        &["account", "import", "--label", evil, auth.to_str().unwrap()],
        "--label",
    );
    refused(
        d,
        &[
            "account",
            "import",
            "--label",
            &"l".repeat(65),
            auth.to_str().unwrap(),
        ],
        "--label",
    );
    let keys = stdout(&run(relay(d).args(["key", "list", "--json"])));
    assert_eq!(keys, "[]", "nothing was created");
}

#[test]
fn names_already_in_the_store_are_printed_escaped() {
    // Names written before they were checked (or straight into the file).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let evil = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}";
    let (auth, _) = write_auth(d, "auth.json", "acct-names-1", "n@example.com");
    let id = stdout(&run(relay(d)
        .args(["account", "import", "--label", "plain"])
        .arg(&auth)));
    assert!(run(relay(d).args(["tenant", "create", "team"]))
        .status
        .success());
    assert!(
        run(relay(d).args(["key", "create", "--name", "ci", "--tenant", "team"]))
            .status
            .success()
    );
    assert!(
        run(relay(d).args(["admin-token", "create", "--scope", "read", "--name", "ops"]))
            .status
            .success()
    );
    let conn = rusqlite::Connection::open(d.join("relay.db")).unwrap();
    for table in [
        "accounts SET label",
        "tenants SET name",
        "api_keys SET name",
        "admin_tokens SET name",
    ] {
        conn.execute(&format!("UPDATE {table} = ?1"), [evil])
            .unwrap();
    }
    drop(conn);
    let raw = |c: char| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c);
    for list in [
        ["account", "list"],
        ["key", "list"],
        ["tenant", "list"],
        ["admin-token", "list"],
    ] {
        for json in [false, true] {
            let mut command = relay(d);
            command.args(list);
            if json {
                command.arg("--json");
            }
            let output = run(&mut command);
            assert!(output.status.success(), "{list:?}: {}", stderr(&output));
            let text = String::from_utf8(output.stdout).unwrap();
            assert!(
                !text.chars().any(raw),
                "{list:?} json={json} printed a raw control character"
            );
            if json {
                let rows: Value = serde_json::from_str(&text).unwrap();
                let named = rows.to_string();
                assert!(
                    named.contains("evil\\u001b[2J"),
                    "JSON reads back the same name: {named}"
                );
            } else {
                assert!(text.contains("evil\\u{1b}[2J"), "{list:?}: {text}");
            }
        }
    }
    let updated = run(relay(d).args(["key", "update", "ci", "--rpm", "5"]));
    assert!(!stderr(&updated).chars().any(raw), "{}", stderr(&updated));
    assert!(stdout(&run(relay(d).args(["account", "list"]))).contains(&id));
}
