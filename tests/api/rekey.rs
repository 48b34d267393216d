//! Master key rotation through the real binary: `store rekey` killed inside its transaction or
//! right after it leaves a store that opens with exactly one of the two keys and finishes when
//! run again; a running server keeps serving through a rekey and seals what it refreshes after
//! it under the new key; afterwards the new key opens the store and the old one is refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup::store_meta;
use crate::cli::{import_accounts, relay, run, stderr, stdout};
use crate::crash::{ask, logged, serve_with};
use crate::helpers::eventually;
use crate::key_sources::key_file;
use crate::mock_upstream::{fake_auth_json, MockUpstream};

const KEY_FILE_ENV: &str = "CODEX_RELAY_MASTER_KEY_FILE";

/// The binary with its master key read from `key`.
fn relay_keyed(dir: &Path, key: &Path) -> Command {
    let mut command = relay(dir);
    command.env(KEY_FILE_ENV, key);
    command
}

/// How many accounts `key` opens, or `None` when the store refuses the key.
fn readable_accounts(dir: &Path, key: &Path) -> Option<usize> {
    let output = run(relay_keyed(dir, key).args(["account", "list", "--json"]));
    if !output.status.success() {
        let err = stderr(&output);
        assert!(
            err.contains("the master key does not open this store"),
            "{err}"
        );
        return None;
    }
    let accounts: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    Some(
        accounts
            .iter()
            .filter(|a| a["state"] != "unreadable")
            .count(),
    )
}

/// `store rekey` from `current` to `new`, SIGKILLed where the test hook pauses it (`point`).
fn rekey_killed_at(dir: &Path, current: &Path, new: &Path, point: &str) {
    let mut child = relay_keyed(dir, current)
        .env("CODEX_RELAY_TEST_REKEY_PAUSE", point)
        .args(["store", "rekey", "--new-key-file"])
        .arg(new)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let paused = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(&format!("rekey: paused {point}")));
    assert!(paused, "the rekey reached the hook");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn rekey(dir: &Path, current: &Path, new: &Path) -> std::process::Output {
    run(relay_keyed(dir, current)
        .args(["store", "rekey", "--new-key-file"])
        .arg(new))
}

#[test]
fn an_interrupted_rekey_leaves_a_store_that_opens_with_exactly_one_key_and_is_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _, _) = key_file(dir.path(), "old.key");
    let (new, _, new_id) = key_file(dir.path(), "new.key");
    let (newer, _, newer_id) = key_file(dir.path(), "newer.key");
    import_accounts(dir.path(), || relay_keyed(dir.path(), &old), "acct", 3);

    // Killed inside the transaction: nothing changed, the old key opens everything.
    rekey_killed_at(dir.path(), &old, &new, "inside");
    assert_eq!(readable_accounts(dir.path(), &old), Some(3));
    assert_eq!(readable_accounts(dir.path(), &new), None);
    let output = rekey(dir.path(), &old, &new);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), new_id, "the new key's id alone on stdout");
    assert!(stderr(&output).contains("re-sealed the tokens of 3 account(s)"));
    assert_eq!(readable_accounts(dir.path(), &new), Some(3));
    assert_eq!(
        readable_accounts(dir.path(), &old),
        None,
        "the old key is refused"
    );

    // Killed right after the commit: the newer key opens everything; run again (the operator
    // not yet sure it finished) it says it is done, whichever key the source still gives.
    rekey_killed_at(dir.path(), &new, &newer, "committed");
    assert_eq!(readable_accounts(dir.path(), &newer), Some(3));
    assert_eq!(readable_accounts(dir.path(), &new), None);
    let output = rekey(dir.path(), &new, &newer);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("already sealed with master key"));
    assert_eq!(stdout(&output), newer_id);

    // The same key twice, or no new key at all, is refused.
    let output = rekey(dir.path(), &newer, &newer);
    assert!(
        output.status.success(),
        "already under it: {}",
        stderr(&output)
    );
    let output = run(relay_keyed(dir.path(), &newer).args(["store", "rekey"]));
    assert_eq!(output.status.code(), Some(2));
}

#[actix_web::test]
async fn a_running_server_keeps_serving_through_a_rekey_and_seals_with_the_new_key() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.set_token_lifetime(2);
    let dir = tempfile::tempdir().unwrap();
    let (old, _, _) = key_file(dir.path(), "old.key");
    let (new, _, new_id) = key_file(dir.path(), "new.key");
    let api_key = stdout(&run(
        relay_keyed(dir.path(), &old).args(["key", "create", "--name", "rekey"])
    ));
    for n in 0..2 {
        let exp = chrono::Utc::now().timestamp() + 2;
        let auth = fake_auth_json(&format!("acct-rekey-{n}"), "k@example.com", "plus", exp);
        let path = dir.path().join(format!("auth-{n}.json"));
        std::fs::write(&path, auth.to_string()).unwrap();
        let output = run(relay_keyed(dir.path(), &old)
            .args(["account", "import"])
            .arg(&path));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let old_text = old.display().to_string();
    let constant_refreshing = [
        (KEY_FILE_ENV, old_text.as_str()),
        ("CODEX_RELAY__OAUTH__REFRESH_SKEW_SECS", "3600"),
        ("CODEX_RELAY__OAUTH__REFRESH_MIN_INTERVAL_SECS", "0"),
        ("CODEX_RELAY__OAUTH__REFRESH_CHECK_INTERVAL_SECS", "1"),
    ];
    let (server, addr, _logs) = serve_with(dir.path(), &mock, &constant_refreshing).await;
    assert!(eventually(10, || async { ask(&addr, &api_key).await == 200 }).await);

    // The rekey runs in another process while requests keep coming.
    let (d, o, n) = (dir.path().to_owned(), old.clone(), new.clone());
    let rekeying = std::thread::spawn(move || rekey(&d, &o, &n));
    let mut statuses = Vec::new();
    while !rekeying.is_finished() {
        statuses.push(ask(&addr, &api_key).await);
    }
    let output = rekeying.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), new_id);

    // The server refreshes after the rekey (tokens live two seconds) and keeps serving.
    let issued = mock.state.issued_tokens().len();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        statuses.push(ask(&addr, &api_key).await);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        mock.state.issued_tokens().len() >= issued + 2,
        "the accounts were refreshed after the rekey"
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    drop(server);

    // What the server wrote after the rekey is sealed with the new key: every account opens.
    assert_eq!(readable_accounts(dir.path(), &new), Some(2));
    assert_eq!(readable_accounts(dir.path(), &old), None);

    // The handover (the new key sealed under the old one) outlives the rekey only until a server
    // starts on the new key.
    let handover = format!("master_key_handover:{new_id}");
    assert!(
        store_meta(&dir.path().join("relay.db"), &handover).is_some(),
        "the rekey left a handover"
    );
    let copy = dir.path().join("copy.db");
    let output = run(relay_keyed(dir.path(), &new).arg("backup").arg(&copy));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        store_meta(&copy, &handover).is_none(),
        "no backup carries it"
    );
    let new_text = new.display().to_string();
    let (server, _, logs) = serve_with(dir.path(), &mock, &[(KEY_FILE_ENV, &new_text)]).await;
    assert!(
        store_meta(&dir.path().join("relay.db"), &handover).is_none(),
        "the server removed it"
    );
    assert!(logged(&logs, "removed the key handovers of earlier rekeys"));
    drop(server);
    mock.stop().await;
}

/// One call with `prompt` (its body read); its status.
async fn ask_with(addr: &str, key: &str, prompt: &str) -> u16 {
    let mut response = crate::helpers::client()
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(key)
        .send_json(&crate::helpers::body("gpt-5.5", prompt, false))
        .await
        .unwrap();
    let _ = response.body().await;
    response.status().as_u16()
}

#[actix_web::test]
async fn captured_calls_stay_readable_through_a_rekey_made_while_the_relay_runs() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (old, _, _) = key_file(dir.path(), "old.key");
    let (new, _, _) = key_file(dir.path(), "new.key");
    const CAPTURE_ON: (&str, &str) = ("CODEX_RELAY__AUDIT__CAPTURE__ENABLED", "true");
    let keyed = |key: &Path| {
        let mut command = relay_keyed(dir.path(), key);
        command.env(CAPTURE_ON.0, CAPTURE_ON.1);
        command
    };
    crate::cli::import_accounts(dir.path(), || keyed(&old), "acct", 1);
    let api_key = stdout(&run(keyed(&old).args(["key", "create", "--name", "ci"])));
    let started =
        run(keyed(&old).args(["audit", "capture", "start", "--key", "ci", "--for", "1h"]));
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started);
    let shows = |key: &Path, prompts: &[&str]| {
        let shown = stdout(&run(keyed(key).args(["audit", "capture", "show", &id])));
        prompts.iter().all(|prompt| shown.contains(prompt))
    };

    let old_text = old.display().to_string();
    let env = [(KEY_FILE_ENV, old_text.as_str()), CAPTURE_ON];
    let (server, addr, _logs) = serve_with(dir.path(), &mock, &env).await;
    assert_eq!(ask_with(&addr, &api_key, "BEFORE-REKEY-4410").await, 200);
    assert!(eventually(5, || async { shows(&old, &["BEFORE-REKEY-4410"]) }).await);

    let output = rekey(dir.path(), &old, &new);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("re-sealed 1 captured call(s)"),
        "{}",
        stderr(&output)
    );
    // The running relay seals what it captures next with the store's new key.
    assert_eq!(ask_with(&addr, &api_key, "AFTER-REKEY-5520").await, 200);
    let both = ["BEFORE-REKEY-4410", "AFTER-REKEY-5520"];
    assert!(eventually(5, || async { shows(&new, &both) }).await);
    drop(server);
    assert!(shows(&new, &both), "readable with the new key alone");
    mock.stop().await;
}
