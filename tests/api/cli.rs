//! The real `codex-relay` binary: settings layers and errors, the master key, account import and
//! listing, API keys, and a running server that follows what the CLI changes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{body, client, eventually};
use crate::mock_upstream::{fake_auth_json, MockUpstream};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_codex-relay");

/// The binary with a store in `dir` and nothing inherited that could change settings.
pub fn relay(dir: &Path) -> Command {
    relay_as(Command::new(BIN), dir)
}

/// Like [`relay`], started by `sh` under `umask` (a process-wide setting, hence a process).
pub fn relay_with_umask(dir: &Path, umask: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", &format!("umask {umask} && exec \"$0\" \"$@\""), BIN]);
    relay_as(command, dir)
}

fn relay_as(mut command: Command, dir: &Path) -> Command {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CODEX_RELAY__STORE__PATH", dir.join("relay.db"))
        .env("CODEX_RELAY__STORE__SYNC_INTERVAL_MS", "200")
        // Tests run side by side: never the default ports.
        .env("CODEX_RELAY__SERVER__LISTEN", "127.0.0.1:0")
        .env("CODEX_RELAY__ADMIN__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn write_auth(dir: &Path, name: &str, account: &str, email: &str) -> (PathBuf, Value) {
    let exp = chrono::Utc::now().timestamp() + 3600;
    let auth = fake_auth_json(account, email, "pro", exp);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&auth).unwrap()).unwrap();
    (path, auth)
}

/// Imports `count` accounts (`{prefix}-0`, …) with `relay()`'s settings; returns their relay ids.
pub fn import_accounts(
    dir: &Path,
    relay: impl Fn() -> Command,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    (0..count)
        .map(|n| {
            let (auth, _) = write_auth(dir, "auth.json", &format!("{prefix}-{n}"), "i@example.com");
            let output = run(relay().args(["account", "import"]).arg(&auth));
            assert!(output.status.success(), "{}", stderr(&output));
            stdout(&output)
        })
        .collect()
}

#[test]
fn an_invalid_setting_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__SERVER__LISTEN", "not-an-address")
        .args(["account", "list"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("server.listen"),
        "{}",
        stderr(&output)
    );

    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "[compat]\nmode = \"lenient\"\n").unwrap();
    let output = run(relay(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["account", "list"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("compat.mode"),
        "{}",
        stderr(&output)
    );

    let output = run(relay(dir.path())
        .env("CODEX_RELAY_CONFIG", dir.path().join("missing.toml"))
        .args(["account", "list"]));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_first_start_generates_a_private_master_key_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(relay(dir.path()).args(["key", "create", "--name", "first"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("generated a new master key"));
    let key_file = dir.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The same key is found again; no new key is generated.
    let output = run(relay(dir.path()).args(["key", "list"]));
    assert!(output.status.success());
    assert!(!stderr(&output).contains("generated"));
    // Another key (from the environment) must not open this store.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY", other)
        .args(["key", "list"]));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("master key"),
        "{}",
        stderr(&output)
    );
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY", "short")
        .args(["key", "list"]));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("32 bytes"), "{}", stderr(&output));
    // A key file named explicitly works like the generated one.
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY_FILE", &key_file)
        .args(["key", "list"]));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn import_reads_an_auth_json_and_updates_instead_of_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let (path, auth) = write_auth(
        dir.path(),
        "auth.json",
        "acct-cli-1",
        "jane.doe@example.com",
    );
    let first = run(relay(dir.path()).args(["account", "import"]).arg(&path));
    assert!(first.status.success(), "{}", stderr(&first));
    let id = stdout(&first);
    assert_eq!(id.len(), 36, "stdout is the account id alone: {id:?}");
    assert!(stderr(&first).contains("j***@example.com"));
    assert!(stderr(&first).contains("now owns this login"));

    // The same ChatGPT account again, from standard input: same id, a warning, no duplicate.
    let mut child = relay(dir.path())
        .args(["account", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(auth.to_string().as_bytes())
        .unwrap();
    let second = child.wait_with_output().unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second), id);
    assert!(
        stderr(&second).contains("already in the pool"),
        "{}",
        stderr(&second)
    );

    let list = run(relay(dir.path()).args(["account", "list", "--json"]));
    let accounts: Value = serde_json::from_slice(&list.stdout).unwrap();
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], id.as_str());
    assert_eq!(accounts[0]["email"], "j***@example.com");
    assert_eq!(accounts[0]["plan"], "pro");
    assert_eq!(accounts[0]["state"], "active");
    assert!(accounts[0]["token_expires_at"].is_string());
    let table = stdout(&run(relay(dir.path()).args(["account", "list"])));
    assert!(
        table.contains(&id) && table.contains("j***@example.com"),
        "{table}"
    );
    for token in ["id_token", "access_token", "refresh_token"] {
        let secret = auth["tokens"][token].as_str().unwrap();
        assert!(!table.contains(secret) && !String::from_utf8_lossy(&list.stdout).contains(secret));
    }
}

#[test]
fn import_refuses_api_key_and_malformed_files_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-proj-abc"}"#,
            "API-key login",
        ),
        (
            r#"{"OPENAI_API_KEY":"sk-proj-abc","tokens":null}"#,
            "no ChatGPT tokens",
        ),
        (
            r#"{"tokens":{"id_token":"x","access_token":"y","refresh_token":"z"},"auth_mode":"chatgpt"}"#,
            "not a JWT",
        ),
        ("this is not json", "not an auth.json"),
    ];
    for (text, reason) in cases {
        let path = dir.path().join("bad.json");
        std::fs::write(&path, text).unwrap();
        let output = run(relay(dir.path()).args(["account", "import"]).arg(&path));
        assert!(!output.status.success(), "{text}");
        assert!(
            stderr(&output).contains(reason),
            "{text}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty());
    }
    let output = run(relay(dir.path())
        .args(["account", "import"])
        .arg(dir.path().join("missing.json")));
    assert!(!output.status.success());
    let list = run(relay(dir.path()).args(["account", "list", "--json"]));
    assert_eq!(stdout(&list), "[]");
}

#[test]
fn keys_are_shown_once_listed_without_secrets_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(relay(dir.path()).args(["key", "create", "--name", "ci"]));
    assert!(created.status.success(), "{}", stderr(&created));
    let key = stdout(&created);
    assert!(
        key.starts_with("sk-relay-") && !key.contains(char::is_whitespace),
        "{key:?}"
    );
    let list = stdout(&run(relay(dir.path()).args(["key", "list", "--json"])));
    assert!(!list.contains(&key));
    let keys: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(keys[0]["name"], "ci");
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    assert!(run(relay(dir.path()).args(["key", "revoke", "ci"]))
        .status
        .success());
    let keys: Value = serde_json::from_str(&stdout(&run(
        relay(dir.path()).args(["key", "list", "--json"])
    )))
    .unwrap();
    assert!(keys[0]["revoked_at"].is_number());
    assert!(!run(relay(dir.path()).args(["key", "revoke", "nope"]))
        .status
        .success());
    assert!(
        !run(relay(dir.path()).args(["key", "create", "--name", ""]))
            .status
            .success()
    );
}

#[test]
fn a_listing_whose_reader_has_gone_ends_quietly_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(relay(dir.path()).args(["key", "create", "--name", "ci"]))
            .status
            .success()
    );
    for format in [&["key", "list"][..], &["key", "list", "--json"]] {
        let mut child = relay(dir.path())
            .args(format)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before the command writes (`codex-relay key list | head -0`).
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = stderr(&output);
        assert!(output.status.success(), "{format:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{format:?}: {stderr}");
    }
}

/// A `codex-relay serve` child process, killed on drop.
pub struct Served {
    child: Child,
    pub addr: String,
    pub admin_addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(dir: &Path, mock: &MockUpstream) -> Served {
    serve_with(relay(dir), mock)
}

/// `command` (the binary, from [`relay`] or [`relay_with_umask`]) serving against `mock`.
pub fn serve_with(mut command: Command, mock: &MockUpstream) -> Served {
    let mut child = command
        .env("CODEX_RELAY__UPSTREAM__BASE_URL", mock.url())
        .env("CODEX_RELAY__OAUTH__ISSUER", mock.url())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if value["msg"] == "listening" {
                let addr = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
                let _ = tx.send((addr("addr"), addr("admin_addr")));
            }
        }
    });
    let (addr, admin_addr) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the relay logs `listening`");
    Served {
        child,
        addr,
        admin_addr,
    }
}

#[actix_web::test]
async fn a_running_server_follows_accounts_and_keys_changed_by_the_cli() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "live"])
    ));
    let served = serve(dir.path(), &mock);
    let url = format!("http://{}/v1/responses", served.addr);
    let ask = |key: String| {
        let url = url.clone();
        async move {
            let mut response = client()
                .post(url)
                .bearer_auth(key)
                .send_json(&body("gpt-5.5", "hi", false))
                .await
                .unwrap();
            let _ = response.body().await;
            response.status().as_u16()
        }
    };
    assert_eq!(ask(key.clone()).await, 503, "no account yet");

    let (path, _) = write_auth(dir.path(), "auth.json", "acct-live-1", "live@example.com");
    let id = stdout(&run(relay(dir.path())
        .args(["account", "import"])
        .arg(&path)));
    assert!(
        eventually(10, || async { ask(key.clone()).await == 200 }).await,
        "the imported account was not picked up"
    );
    let seen = mock.state.responses_requests().pop().unwrap();
    assert_eq!(seen.header("chatgpt-account-id"), Some("acct-live-1"));

    let second = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "second"])
    ));
    assert!(
        eventually(10, || async { ask(second.clone()).await == 200 }).await,
        "a new key was not picked up"
    );
    assert!(run(relay(dir.path()).args(["key", "revoke", "second"]))
        .status
        .success());
    assert!(
        eventually(10, || async { ask(second.clone()).await == 401 }).await,
        "a revoked key kept working"
    );

    assert!(run(relay(dir.path()).args(["account", "remove", &id]))
        .status
        .success());
    assert!(
        eventually(10, || async { ask(key.clone()).await == 503 }).await,
        "a removed account kept serving"
    );
    drop(served);
    mock.stop().await;
}
