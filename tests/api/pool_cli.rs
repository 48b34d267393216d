//! `codex-relay account set` and the pool fields of `account list --json`, with the real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::mock_upstream::fake_auth_json;

fn relay(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex-relay"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CODEX_RELAY__STORE__PATH", dir.join("relay.db"))
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn account_set_changes_routing_and_the_listing_shows_the_pool_state() {
    let dir = tempfile::tempdir().unwrap();
    let auth = fake_auth_json("acct-pool-cli", "ops@example.com", "pro", 2_000_000_000);
    let file = dir.path().join("auth.json");
    std::fs::write(&file, auth.to_string()).unwrap();
    let imported = relay(dir.path(), &["account", "import", file.to_str().unwrap()]);
    assert!(imported.status.success());
    let id = String::from_utf8_lossy(&imported.stdout).trim().to_owned();

    let nothing = relay(dir.path(), &["account", "set", &id]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to set"));
    let unknown = relay(dir.path(), &["account", "set", "no-such", "--weight", "2"]);
    assert!(!unknown.status.success());
    let zero = relay(dir.path(), &["account", "set", &id, "--weight", "0"]);
    assert!(!zero.status.success(), "a weight of 0 is refused");

    let set = relay(
        dir.path(),
        &[
            "account",
            "set",
            "acct-pool-cli",
            "--priority",
            "-2",
            "--weight",
            "3",
            "--max-in-flight",
            "4",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let list = relay(dir.path(), &["account", "list", "--json"]);
    let accounts: Value = serde_json::from_slice(&list.stdout).unwrap();
    let pool = &accounts[0]["pool"];
    assert_eq!(accounts[0]["id"], id.as_str());
    assert_eq!(pool["routing"]["priority"], -2);
    assert_eq!(pool["routing"]["weight"], 3);
    assert_eq!(pool["routing"]["max_in_flight"], 4);
    assert_eq!(pool["health"]["status"], "ready");
    assert_eq!(pool["health"]["breaker"], "closed");
    assert!(pool["quota"].is_null(), "no answer seen yet");

    let reset = relay(
        dir.path(),
        &["account", "set", &id, "--default-max-in-flight"],
    );
    assert!(reset.status.success());
    let list = relay(dir.path(), &["account", "list", "--json"]);
    let accounts: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(accounts[0]["pool"]["routing"]["max_in_flight"].is_null());
    let table = relay(dir.path(), &["account", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("HEALTH"));
}
