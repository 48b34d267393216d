//! `codex-relay audit capture …` against the real binary: refused while capture is off; started,
//! listed, shown and stopped with the operating system's user as the actor; a running server
//! captures what a CLI-started capture covers.

use std::process::Command;

use serde_json::Value;

use crate::cli::{import_accounts, relay, run, serve_with, stderr, stdout};
use crate::helpers::{body, client, eventually};
use crate::mock_upstream::MockUpstream;

fn with_capture(mut command: Command) -> Command {
    command.env("CODEX_RELAY__AUDIT__CAPTURE__ENABLED", "true");
    command
}

/// The audit lines a command wrote on stderr.
fn acts(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["msg"] == "audit act")
        .collect()
}

#[actix_web::test]
async fn the_cli_starts_lists_shows_and_stops_a_capture_as_its_user() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    import_accounts(dir.path(), || relay(dir.path()), "acct", 1);
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "ci"])
    ));

    let refused =
        run(relay(dir.path()).args(["audit", "capture", "start", "--key", "ci", "--for", "1h"]));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("audit.capture.enabled"),
        "{}",
        stderr(&refused)
    );
    assert!(!dir.path().join("capture.db").exists());

    let started = run(with_capture(relay(dir.path())).args([
        "audit", "capture", "start", "--key", "ci", "--for", "1h", "--reason", "ticket 7",
    ]));
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started);
    assert!(id.starts_with("cap_"), "only the id on stdout: {id}");
    let act = &acts(&stderr(&started))[0];
    assert_eq!(act["action"], "capture.start");
    assert_eq!(act["result"], "ok");
    assert!(act["actor"].as_str().unwrap().starts_with("cli:"), "{act}");

    let listed = run(relay(dir.path()).args(["audit", "capture", "list", "--json"]));
    let rows: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "active");
    assert_eq!(rows[0]["reason"], "ticket 7");

    let served = serve_with(with_capture(relay(dir.path())), &mock);
    let url = format!("http://{}/v1/responses", served.addr);
    let sent = client()
        .post(&url)
        .bearer_auth(&key)
        .send_json(&body("gpt-5.5", "CLI-CAPTURED-PROMPT-3301", false))
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let shown = eventually(5, || async {
        let shown = run(relay(dir.path()).args(["audit", "capture", "show", &id]));
        stdout(&shown).contains("CLI-CAPTURED-PROMPT-3301")
    })
    .await;
    assert!(shown, "the CLI never showed the captured call");
    let show = run(relay(dir.path()).args(["audit", "capture", "show", &id]));
    assert_eq!(acts(&stderr(&show))[0]["action"], "capture.read");

    let stopped = run(relay(dir.path()).args(["audit", "capture", "stop", &id]));
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert_eq!(acts(&stderr(&stopped))[0]["action"], "capture.stop");
    let again = run(relay(dir.path()).args(["audit", "capture", "stop", &id]));
    assert!(
        !again.status.success(),
        "a stopped capture cannot be stopped again"
    );
    let listed = run(relay(dir.path()).args(["audit", "capture", "list", "--json"]));
    let rows: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(rows[0]["status"], "stopped");
    assert!(rows[0]["stopped_by"].as_str().unwrap().starts_with("cli:"));
}
