//! `codex-relay config show|check` through the real binary: each effective value with the layer
//! it came from, secrets masked and the master key shown by its source only; a settings file
//! checked as startup checks it, without creating a store.

use serde_json::Value;

use crate::cli::{relay, run, stderr, stdout};

fn setting<'a>(shown: &'a Value, key: &str) -> &'a Value {
    shown["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no `{key}`: {shown}"))
}

#[test]
fn config_show_names_the_source_of_each_value_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        "[limits]\ndefault_key_rpm = 42\n[upstream]\nbase_url = \"https://relay:hunter2@proxy.example/codex\"\n",
    )
    .unwrap();
    let key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__LOG__LEVEL", "debug")
        .env("CODEX_RELAY_MASTER_KEY", key)
        .arg("--config")
        .arg(&file)
        .args(["config", "show", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rpm = setting(&shown, "limits.default_key_rpm");
    assert_eq!(rpm["value"], 42);
    assert_eq!(rpm["source"], format!("file:{}", file.display()));
    let level = setting(&shown, "log.level");
    assert_eq!(
        (&level["value"], &level["source"]),
        (
            &Value::from("debug"),
            &Value::from("env:CODEX_RELAY__LOG__LEVEL")
        )
    );
    assert_eq!(
        setting(&shown, "admin.listen")["source"],
        "env:CODEX_RELAY__ADMIN__LISTEN"
    );
    assert_eq!(setting(&shown, "routing.strategy")["source"], "default");
    let base = setting(&shown, "upstream.base_url")["value"]
        .as_str()
        .unwrap();
    assert_eq!(base, "https://relay:********@proxy.example/codex");
    assert_eq!(shown["master_key"]["source"], "env:CODEX_RELAY_MASTER_KEY");
    let text = stdout(&output);
    assert!(!text.contains("hunter2") && !text.contains(key), "{text}");
    assert!(!dir.path().join("relay.db").exists(), "nothing was opened");

    let table = stdout(&run(relay(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "show"])));
    let line = table
        .lines()
        .find(|l| l.starts_with("limits.default_key_rpm"))
        .unwrap();
    assert!(line.contains("42") && line.contains("(file:"), "{line}");
    assert!(table.contains("master key"), "{table}");
    assert!(
        !dir.path().join("master.key").exists(),
        "no key was generated"
    );
}

#[test]
fn config_check_says_valid_or_names_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "[routing]\nmax_attempts = 5\n").unwrap();
    let output = run(relay(dir.path()).args(["config", "check"]).arg(&file));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "valid");

    std::fs::write(&file, "[routing]\nmax_attempts = 50\n").unwrap();
    let output = run(relay(dir.path()).args(["config", "check"]).arg(&file));
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(
        said.contains("`routing.max_attempts`: must be 1 to 20"),
        "{said}"
    );
    // The same message as a start with that file.
    let serve = run(relay(dir.path()).arg("--config").arg(&file).arg("serve"));
    assert_eq!(serve.status.code(), Some(2));
    assert!(stderr(&serve).contains("`routing.max_attempts`: must be 1 to 20"));

    // The environment lies over the file, as at startup.
    std::fs::write(&file, "[routing]\nmax_attempts = 5\n").unwrap();
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__LIMITS__MAX_IN_FLIGHT", "0")
        .args(["config", "check"])
        .arg(&file));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("limits.max_in_flight"));
    let missing = run(relay(dir.path()).args(["config", "check", "nope.toml"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("nope.toml"),
        "{}",
        stderr(&missing)
    );
    assert!(!dir.path().join("relay.db").exists());
}
