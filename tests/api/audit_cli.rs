//! The audit trail with the real binary: `audit verify` names each kind of tampering and exits
//! non-zero; a SIGTERM writes every row still pending; a SIGKILL loses at most the rows of the
//! last flush interval (measured here: the figure in docs/audit.md); a trail an earlier release
//! wrote converts when a new one serves it, every row's hash kept.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit::edit_row;
use crate::cli::{import_accounts, relay, run, stderr, stdout};
use crate::crash::{ask, serve_with};
use crate::helpers::{body, client, eventually};
use crate::mock_upstream::MockUpstream;

/// A trail as the releases before segments wrote it (a SQLite row per audit row, schema version 3),
/// written by such a release's own binary: how, in `tests/fixtures/README.md`.
const TRAIL_OF_ROWS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-rows-v3.db"
);

/// An edit of a copy of the trail, as someone with write access to the file would make it.
type Tampering = dyn Fn(&Path);

fn sql(file: &Path, statements: &str) {
    rusqlite::Connection::open(file)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

/// `audit verify` on the trail at `file`: its exit code and what it said.
fn verify(dir: &Path, file: &Path) -> (Option<i32>, String) {
    let output = run(relay(dir)
        .env("CODEX_RELAY__AUDIT__PATH", file)
        .args(["audit", "verify"]));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    (output.status.code(), said)
}

#[test]
fn verify_names_each_kind_of_tampering_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..6 {
        let output = run(relay(dir.path()).args(["tenant", "create", &format!("team-{n}")]));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let trail = dir.path().join("audit.db");
    let (code, said) = verify(dir.path(), &trail);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("6 rows"), "{said}");
    // Each act is appended by its own process: a segment of one row each.
    let tamperings: [(&Tampering, &str); 4] = [
        (
            &|copy| edit_row(copy, 3, |line| line.replace("team-2", "team-9")),
            "row 3 was edited",
        ),
        (
            &|copy| sql(copy, "DELETE FROM audit_segments WHERE first_seq = 4"),
            "row 4 was deleted",
        ),
        (
            &|copy| {
                sql(
                    copy,
                    "UPDATE audit_segments SET first_seq = -1, last_seq = -1 WHERE first_seq = 2;
                     UPDATE audit_segments SET first_seq = 2, last_seq = 2 WHERE first_seq = 5;
                     UPDATE audit_segments SET first_seq = 5, last_seq = 5 WHERE first_seq = -1;",
                )
            },
            "row 2 was reordered",
        ),
        (
            &|copy| sql(copy, "DELETE FROM audit_segments WHERE first_seq >= 5"),
            "rows 5 to 6 were cut off",
        ),
    ];
    for (n, (tamper, named)) in tamperings.iter().enumerate() {
        let copy = dir.path().join(format!("tampered-{n}.db"));
        std::fs::copy(&trail, &copy).unwrap();
        tamper(&copy);
        let (code, said) = verify(dir.path(), &copy);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.contains(named), "expected `{named}`: {said}");
    }
}

/// A served binary with one account and a key: the key, the served relay, the data folder.
async fn served_relay(
    dir: &Path,
    mock: &MockUpstream,
    env: &[(&str, &str)],
) -> (String, crate::crash::Relay, String) {
    import_accounts(dir, || relay(dir), "acct-audit", 1);
    let key = stdout(&run(relay(dir).args(["key", "create", "--name", "k"])));
    let (child, addr, _) = serve_with(dir, mock, env).await;
    (key, child, addr)
}

/// The request ids of the trail's `responses.create` rows.
fn recorded_requests(dir: &Path) -> Vec<String> {
    let output = run(relay(dir).args([
        "audit",
        "search",
        "--action",
        "responses.create",
        "--limit",
        "100000",
        "--json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    rows.iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
        .collect()
}

#[actix_web::test]
async fn a_graceful_stop_writes_every_pending_row() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Nothing would be written for a minute but by the stop.
    let slow = [
        ("CODEX_RELAY__AUDIT__FLUSH_INTERVAL_MS", "60000"),
        ("CODEX_RELAY__AUDIT__FLUSH_ROWS", "100000"),
    ];
    let (key, mut child, addr) = served_relay(dir.path(), &mock, &slow).await;
    for _ in 0..20 {
        assert_eq!(ask(&addr, &key).await, 200);
    }
    child.terminate().await;
    assert_eq!(recorded_requests(dir.path()).len(), 20);
    mock.stop().await;
}

#[actix_web::test]
async fn a_kill_9_loses_at_most_the_last_flush_interval() {
    const FLUSH_MS: u64 = 200;
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, mut child, addr) = served_relay(dir.path(), &mock, &[]).await;
    // Requests one after another for a while; each id and when its answer arrived.
    let mut answered: Vec<(String, Instant)> = Vec::new();
    let until = Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let id = format!("kill9-{n}");
        let mut response = client()
            .post(format!("http://{addr}/v1/responses"))
            .bearer_auth(&key)
            .insert_header(("x-request-id", id.as_str()))
            .send_json(&body("gpt-5.5", "hi", false))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.body().await;
        answered.push((id, Instant::now()));
    }
    child.0.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    let _ = child.0.wait();
    let recorded = recorded_requests(dir.path());
    let lost: Vec<&(String, Instant)> = answered
        .iter()
        .filter(|(id, _)| !recorded.contains(id))
        .collect();
    // The loss window: from the first answered request missing to the kill.
    let window = lost
        .iter()
        .map(|(_, at)| killed.duration_since(*at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "kill -9: {} of {} answered requests lost, window {} ms (flush interval {FLUSH_MS} ms)",
        lost.len(),
        answered.len(),
        window.as_millis()
    );
    // The interval, plus one batch's write and the scheduling of a busy shared test machine;
    // a writer that did not flush on its interval would lose the whole 1.5 s.
    assert!(
        window < Duration::from_millis(FLUSH_MS + 600),
        "lost the rows of {} ms",
        window.as_millis()
    );
    mock.stop().await;
}

#[test]
fn a_backup_copies_the_audit_trail_beside_the_store_and_the_copy_verifies() {
    let dir = tempfile::tempdir().unwrap();
    import_accounts(dir.path(), || relay(dir.path()), "acct-backup", 1);
    for n in 0..3 {
        let output = run(relay(dir.path()).args(["tenant", "create", &format!("team-{n}")]));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let file = dir.path().join("backup.db");
    let output = run(relay(dir.path()).arg("backup").arg(&file));
    assert!(output.status.success(), "{}", stderr(&output));
    let copy = dir.path().join("backup.db.audit.db");
    assert!(
        stderr(&output).contains("up to row 4"),
        "{}",
        stderr(&output)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (code, said) = verify(dir.path(), &copy);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("4 rows"), "{said}");
}

/// Each row's place and hash, oldest first, as `audit search --json` shows them.
fn searched_links(dir: &Path) -> Vec<(i64, String)> {
    let output = run(relay(dir).args(["audit", "search", "--limit", "100000", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let link = |r: &Value| {
        (
            r["seq"].as_i64().unwrap(),
            r["hash"].as_str().unwrap().into(),
        )
    };
    rows.iter().rev().map(link).collect()
}

#[actix_web::test]
async fn a_trail_an_earlier_release_wrote_converts_when_served_and_every_hash_is_kept() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    import_accounts(dir.path(), || relay(dir.path()), "acct-upgrade", 1);
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "k"])
    ));
    // The trail those two acts began is replaced by the earlier release's.
    for file in ["audit.db", "audit.db-wal", "audit.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let trail = dir.path().join("audit.db");
    std::fs::copy(TRAIL_OF_ROWS, &trail).unwrap();
    let before: Vec<(i64, String)> = {
        let conn = rusqlite::Connection::open(&trail).unwrap();
        let mut rows = conn
            .prepare("SELECT seq, hash FROM audit_rows ORDER BY seq")
            .unwrap();
        let links = rows.query_map([], |r| Ok((r.get(0)?, r.get(1)?)));
        links.unwrap().map(Result::unwrap).collect()
    };
    assert!(
        before.len() >= 10,
        "the fixture holds {} rows",
        before.len()
    );

    let (mut child, addr, logs) = serve_with(dir.path(), &mock, &[]).await;
    let rows = format!("\"rows\":{}", before.len());
    let verified = eventually(10, || async {
        let lines = logs.lock().unwrap();
        lines
            .iter()
            .any(|l| l.contains("the audit trail verifies") && l.contains(&rows))
    })
    .await;
    assert!(
        verified,
        "no verification of {rows}: {:?}",
        logs.lock().unwrap()
    );
    assert_eq!(ask(&addr, &key).await, 200);
    child.terminate().await;

    let (code, said) = verify(dir.path(), &trail);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("{} rows", before.len() + 1)),
        "{said}"
    );
    let after = searched_links(dir.path());
    assert_eq!(
        after[..before.len()],
        before[..],
        "a row's place or hash changed"
    );
    assert_eq!(after.len(), before.len() + 1);
    let conn = rusqlite::Connection::open(&trail).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'audit_rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the rows' table is left behind");
    mock.stop().await;
}
