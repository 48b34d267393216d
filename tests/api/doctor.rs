//! `codex-relay doctor` through the real binary: a healthy installation against the mock over
//! TLS passes every check, and each problem provoked fails the check that names it, with what to
//! do: a wrong master key, a database open to others, an admin plane beyond loopback without a
//! token, an upstream that cannot be reached or whose certificate is not trusted, an account whose
//! login is dead, and — asked of the running relay — an account serving with tokens its store
//! could not take. Nothing secret is printed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::Value;

use crate::cli::{relay, run, stderr, stdout, write_auth};
use crate::helpers::spawn_app;
use crate::mock_upstream::MockUpstream;
use crate::refresh::refresh_onto_a_full_disk;

/// A store in `dir` with one imported account; returns the auth.json it came from.
fn store_with_an_account(dir: &Path) -> Value {
    let (path, auth) = write_auth(dir, "auth.json", "acct-doctor-1", "doc@example.com");
    let output = run(relay(dir).args(["account", "import"]).arg(&path));
    assert!(output.status.success(), "{}", stderr(&output));
    auth
}

/// The binary with its store in `dir/data`: a folder of its own, which the relay keeps private
/// (the test's folder holds the auth.json and the mock's certificate too).
fn relay_in_data(dir: &Path) -> Command {
    let mut command = relay(dir);
    command.env("CODEX_RELAY__STORE__PATH", dir.join("data/relay.db"));
    command
}

/// The binary pointed at `mock` (both the upstream and the issuer), trusting `cert` if given.
fn against(dir: &Path, mock: &MockUpstream, cert: Option<&Path>) -> Command {
    let mut command = relay_in_data(dir);
    command
        .env("CODEX_RELAY__UPSTREAM__BASE_URL", mock.url())
        .env("CODEX_RELAY__OAUTH__ISSUER", mock.url());
    if let Some(cert) = cert {
        command.env("CODEX_RELAY__UPSTREAM__CA_FILE", cert);
    }
    command
}

/// Runs `doctor --json` (plus `extra`) off the test's thread, where the mock serves.
async fn doctor(mut command: Command, extra: &[&str]) -> (i32, Value, String) {
    command.args(["doctor", "--json"]).args(extra);
    let output = actix_web::rt::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    (output.status.code().unwrap_or(-1), report, text)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check: {report}"))
}

fn names(report: &Value) -> Vec<&str> {
    let checks = report["checks"].as_array().unwrap();
    checks.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

fn assert_fails(report: &Value, name: &str, message: &str, hint: &str) {
    let found = check(report, name);
    assert_eq!(found["status"], "fail", "{found}");
    assert!(
        found["message"].as_str().unwrap().contains(message),
        "{found}"
    );
    assert!(found["hint"].as_str().unwrap().contains(hint), "{found}");
}

#[actix_web::test]
async fn a_healthy_installation_passes_every_check_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert: PathBuf = dir.path().join("mock-cert.pem");
    let mock = MockUpstream::start_tls("127.0.0.1:0", &cert).await.unwrap();
    let (path, auth) = write_auth(dir.path(), "auth.json", "acct-doctor-1", "doc@example.com");
    let output = run(relay_in_data(dir.path())
        .args(["account", "import"])
        .arg(&path));
    assert!(output.status.success(), "{}", stderr(&output));
    let (code, report, text) = doctor(against(dir.path(), &mock, Some(&cert)), &[]).await;
    let expected = [
        "settings",
        "store",
        "master_key",
        "file_modes",
        "admin_exposure",
        "accounts",
        "disk",
        "upstream",
        "oauth_issuer",
        "clock",
    ];
    assert_eq!(names(&report), expected);
    for found in report["checks"].as_array().unwrap() {
        // The machine's free disk is not the test's to decide; only a failure there would be.
        let tolerated = found["name"] == "disk" && found["status"] == "warn";
        assert!(found["status"] == "ok" || tolerated, "{found}");
        assert!(found["hint"].is_null() || tolerated, "{found}");
    }
    assert_eq!(code, 0, "{text}");
    let upstream = check(&report, "upstream")["message"].as_str().unwrap();
    assert!(upstream.contains("over TLS"), "{upstream}");
    for token in ["id_token", "access_token", "refresh_token"] {
        assert!(!text.contains(auth["tokens"][token].as_str().unwrap()));
    }
    let key = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    assert!(!text.contains(key.trim()), "the master key was printed");
    mock.stop().await;
}

#[actix_web::test]
async fn an_upstream_out_of_reach_or_untrusted_fails_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("mock-cert.pem");
    let mock = MockUpstream::start_tls("127.0.0.1:0", &cert).await.unwrap();

    let (code, report, _) = doctor(against(dir.path(), &mock, None), &[]).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "upstream",
        "TLS handshake failed",
        "upstream.ca_file",
    );
    assert_fails(
        &report,
        "oauth_issuer",
        "TLS handshake failed",
        "upstream.ca_file",
    );
    assert_eq!(check(&report, "clock")["status"], "warn");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut command = against(dir.path(), &mock, Some(&cert));
    command.env("CODEX_RELAY__UPSTREAM__BASE_URL", &nowhere);
    let (code, report, _) = doctor(command, &[]).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "upstream",
        "cannot be reached",
        "upstream.base_url",
    );
    assert_eq!(check(&report, "oauth_issuer")["status"], "ok");

    let mut command = against(dir.path(), &mock, Some(&cert));
    command.env(
        "CODEX_RELAY__UPSTREAM__BASE_URL",
        "https://nowhere.invalid/codex",
    );
    let (_, report, _) = doctor(command, &[]).await;
    assert_fails(&report, "upstream", "does not resolve", "DNS");
    mock.stop().await;
}

#[test]
fn a_wrong_master_key_fails_without_showing_either_key() {
    let dir = tempfile::tempdir().unwrap();
    store_with_an_account(dir.path());
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY", other)
        .args(["doctor", "--offline", "--json"]));
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fails(
        &report,
        "master_key",
        "does not open this store",
        "CODEX_RELAY_MASTER_KEY_FILE",
    );
    assert_eq!(
        check(&report, "store")["status"],
        "ok",
        "the store is intact"
    );
    let text = stdout(&output);
    let key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    assert!(!text.contains(other) && !text.contains(key.trim()));
}

#[test]
fn a_database_open_to_others_fails_and_doctor_leaves_it_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    store_with_an_account(dir.path());
    let db = dir.path().join("relay.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(relay(dir.path()).args(["doctor", "--offline", "--json"]));
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fails(&report, "file_modes", "relay.db (mode 0644)", "chmod 600");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "doctor only reads");
}

#[test]
fn an_admin_plane_beyond_loopback_without_a_token_fails_until_one_exists() {
    let dir = tempfile::tempdir().unwrap();
    store_with_an_account(dir.path());
    let exposed = || {
        let mut command = relay(dir.path());
        command
            .env("CODEX_RELAY__ADMIN__LISTEN", "0.0.0.0:8081")
            .args(["doctor", "--offline", "--json"]);
        command
    };
    let output = run(&mut exposed());
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fails(
        &report,
        "admin_exposure",
        "no admin token exists",
        "codex-relay admin-token create",
    );
    let created =
        run(relay(dir.path()).args(["admin-token", "create", "--scope", "write", "--name", "ops"]));
    assert!(created.status.success(), "{}", stderr(&created));
    let output = run(&mut exposed());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(check(&report, "admin_exposure")["status"], "ok");
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(!stdout(&output).contains(&stdout(&created)), "the token");
}

#[test]
fn an_account_whose_login_is_dead_fails_naming_it_and_the_way_back() {
    let dir = tempfile::tempdir().unwrap();
    store_with_an_account(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
    let reason = "refresh_token_reused: the refresh token was already used";
    db.execute("UPDATE accounts SET reauth_reason = ?1", [reason])
        .unwrap();
    let id: String = db
        .query_row("SELECT id FROM accounts", [], |r| r.get(0))
        .unwrap();
    drop(db);
    let output = run(relay(dir.path()).args(["doctor", "--offline", "--json"]));
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_fails(&report, "accounts", &id, "account login");
    assert!(check(&report, "accounts")["message"]
        .as_str()
        .unwrap()
        .contains("refresh_token_reused"));
}

#[test]
fn warnings_pass_unless_strict_and_the_text_report_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(relay(dir.path()).args(["key", "create", "--name", "first"]));
    assert!(created.status.success());
    let output = run(relay(dir.path()).args(["doctor", "--offline"]));
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("WARN  accounts"), "{text}");
    assert!(
        text.contains("→ add one: `codex-relay account import FILE`"),
        "{text}"
    );
    assert!(
        !text.contains("upstream"),
        "--offline skips the network: {text}"
    );
    let strict = run(relay(dir.path()).args(["doctor", "--offline", "--strict"]));
    assert_eq!(strict.status.code(), Some(1));

    let invalid = run(relay(dir.path())
        .env("CODEX_RELAY__LIMITS__MAX_IN_FLIGHT", "0")
        .args(["doctor", "--json"]));
    assert_eq!(invalid.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&invalid.stdout).unwrap();
    assert_eq!(names(&report), ["settings"]);
    assert_fails(&report, "settings", "limits.max_in_flight", "config show");
}

#[actix_web::test]
async fn an_account_serving_with_unsaved_tokens_fails_when_the_running_relay_is_asked() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let read = app.admin_token(AdminScope::Read).await;
    let asking = |token: &str| {
        let dir = app.settings.store.path.parent().unwrap();
        let mut command = relay(dir);
        command
            .env("CODEX_RELAY__STORE__PATH", &app.settings.store.path)
            .env("CODEX_RELAY__ADMIN__LISTEN", app.admin_addr.to_string())
            .env("CODEX_RELAY_ADMIN_TOKEN", token);
        command
    };
    let (_, report, _) = doctor(asking(&read), &["--offline"]).await;
    let relay_check = check(&report, "relay");
    assert_eq!(relay_check["status"], "ok", "{relay_check}");

    refresh_onto_a_full_disk(&app, &write).await;
    let (code, report, text) = doctor(asking(&read), &["--offline"]).await;
    assert_eq!(code, 1, "{text}");
    assert_fails(&report, "relay", &app.account_id, "keep the relay running");
    assert!(!text.contains(&read), "the admin token was printed");

    let (_, report, _) = doctor(asking("not-a-token"), &["--offline"]).await;
    assert_eq!(check(&report, "relay")["status"], "warn");
    let (_, report, _) = doctor(
        relay(app.settings.store.path.parent().unwrap()),
        &["--offline"],
    )
    .await;
    assert!(!names(&report).contains(&"relay"), "no token, no question");
    app.stop().await;
}
