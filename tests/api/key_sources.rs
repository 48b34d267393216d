//! Where secrets come from, through the real binary: the master key printed by a command (once
//! per start, its failure said with its stderr's first line and never its output, killed after
//! its timeout), two key sources refused, and any setting read from a `…_FILE` variable.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_relay::store::MasterKey;

use crate::cli::{relay, run, stderr, stdout};
use crate::crash::{logged, serve_with};
use crate::mock_upstream::MockUpstream;

/// A fresh key's base64 text in `dir/name`, and the key's id.
pub fn key_file(dir: &Path, name: &str) -> (std::path::PathBuf, String, String) {
    let text = base64_key();
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    let id = MasterKey::from_base64(&text).unwrap().id_hex();
    (path, text, id)
}

fn base64_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A command that notes each run in `dir/runs` and prints the key in `key`.
fn counting_command(dir: &Path, key: &Path) -> String {
    format!(
        "echo run >> '{}'; cat '{}'",
        dir.join("runs").display(),
        key.display()
    )
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[actix_web::test]
async fn the_master_key_can_come_from_a_command_run_once_per_start() {
    let dir = tempfile::tempdir().unwrap();
    let (key, text, id) = key_file(dir.path(), "vault-answer");
    let command = counting_command(dir.path(), &key);
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY_COMMAND", &command)
        .args(["key", "create", "--name", "from-command"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(runs(dir.path()), 1, "once per CLI invocation");
    assert!(!dir.path().join("master.key").exists(), "no key generated");
    // The store is sealed with the command's key: the same key from the environment opens it.
    let listed = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY", &text)
        .args(["key", "list"]));
    assert!(listed.status.success(), "{}", stderr(&listed));

    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let env = [("CODEX_RELAY_MASTER_KEY_COMMAND", command.as_str())];
    let (relay, _addr, logs) = serve_with(dir.path(), &mock, &env).await;
    assert!(logged(
        &logs,
        "master key read from CODEX_RELAY_MASTER_KEY_COMMAND"
    ));
    assert!(logged(&logs, &id), "the key id is logged");
    assert!(!logged(&logs, &text), "the key never is");
    assert!(!logged(&logs, "vault-answer"), "nor the command");
    assert_eq!(runs(dir.path()), 2, "once per start");
    drop(relay);
    mock.stop().await;
}

#[test]
fn a_failing_key_command_stops_startup_with_its_first_stderr_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text, _) = key_file(dir.path(), "unused");
    let cases = [
        (
            format!("echo {text}; echo 'vault: permission denied for {text}' >&2; echo more >&2; exit 2"),
            "exited with status 2: \"vault: permission denied for [redacted]\"",
        ),
        (
            "echo 'no secret version' >&2".to_owned(),
            "printed no key: \"no secret version\"",
        ),
        ("echo not-a-key".to_owned(), "base64"),
    ];
    for (command, said) in cases {
        let output = run(relay(dir.path())
            .env("CODEX_RELAY_MASTER_KEY_COMMAND", &command)
            .args(["key", "list"]));
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.contains("CODEX_RELAY_MASTER_KEY_COMMAND"), "{err}");
        assert!(err.contains(said), "{err}");
        assert!(!err.contains(&text) && !err.contains("more"), "{err}");
        assert!(!err.contains("not-a-key"), "stdout is never shown: {err}");
    }
    assert!(!dir.path().join("relay.db").exists(), "nothing was opened");
    assert!(
        !dir.path().join("master.key").exists(),
        "no key was generated"
    );
}

#[test]
fn a_key_command_that_hangs_is_killed_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = run(relay(dir.path())
        .env("CODEX_RELAY_MASTER_KEY_COMMAND", "sleep 30; echo late")
        .env("CODEX_RELAY__STORE__MASTER_KEY_COMMAND_TIMEOUT_SECS", "1")
        .args(["key", "list"]));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("did not finish within 1 s"), "{err}");
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__STORE__MASTER_KEY_COMMAND_TIMEOUT_SECS", "0")
        .args(["key", "list"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("store.master_key_command_timeout_secs"));
}

#[test]
fn two_master_key_sources_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let (file, text, _) = key_file(dir.path(), "key");
    let sources = [
        ("CODEX_RELAY_MASTER_KEY", text.clone()),
        ("CODEX_RELAY_MASTER_KEY_FILE", file.display().to_string()),
        (
            "CODEX_RELAY_MASTER_KEY_COMMAND",
            format!("cat '{}'", file.display()),
        ),
    ];
    for (i, first) in sources.iter().enumerate() {
        for second in &sources[i + 1..] {
            let output = run(relay(dir.path())
                .env(first.0, &first.1)
                .env(second.0, &second.1)
                .args(["key", "list"]));
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(1), "{err}");
            assert!(
                err.contains(&format!("both {} and {} are set", first.0, second.0)),
                "{err}"
            );
            assert!(!err.contains(&text), "{err}");
        }
    }
}

#[test]
fn any_setting_can_come_from_a_file_variable() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere.db");
    let value = dir.path().join("store-path");
    std::fs::write(&value, format!("{}\n", elsewhere.display())).unwrap();
    let output = run(relay(dir.path())
        .env_remove("CODEX_RELAY__STORE__PATH")
        .env("CODEX_RELAY__STORE__PATH_FILE", &value)
        .args(["key", "create", "--name", "filed"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(elsewhere.exists(), "the store is where the file says");
    assert!(!dir.path().join("relay.db").exists());
    assert!(!stdout(&output).is_empty());

    // Both the variable and its file variant: refused, naming both.
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__STORE__PATH_FILE", &value)
        .args(["key", "list"]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("CODEX_RELAY__STORE__PATH_FILE"), "{err}");
    assert!(err.contains("CODEX_RELAY__STORE__PATH is set too"), "{err}");

    // A file that is not there: refused, naming the variable and the path.
    let missing = dir.path().join("no-such-secret");
    let output = run(relay(dir.path())
        .env_remove("CODEX_RELAY__STORE__PATH")
        .env("CODEX_RELAY__STORE__PATH_FILE", &missing)
        .args(["key", "list"]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("CODEX_RELAY__STORE__PATH_FILE"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A value from a file is checked like the plain variable, naming the key.
    std::fs::write(&value, "not-an-address\n").unwrap();
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__SERVER__LISTEN_FILE", &value)
        .env_remove("CODEX_RELAY__SERVER__LISTEN")
        .args(["key", "list"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("server.listen"),
        "{}",
        stderr(&output)
    );
}
