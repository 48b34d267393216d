//! Backup and restore through the real binary: a backup taken while the server serves is
//! private, passes its integrity check and names its key; a restore refuses while a server runs
//! (but not after one was killed), refuses a backup the configured key cannot open unless
//! forced, and brings back the accounts and keys of the moment of the backup.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use codex_relay::store::MasterKey;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::cli::{import_accounts, relay, run, stderr, stdout};
use crate::crash::{ask, serve_with};
use crate::helpers::eventually;
use crate::key_sources::key_file;
use crate::mock_upstream::MockUpstream;

fn accounts(dir: &Path) -> Vec<Value> {
    let output = run(relay(dir).args(["account", "list", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// The value of `name` in the `store_meta` of the store or backup `db`, if it has one.
pub fn store_meta(db: &Path, name: &str) -> Option<Vec<u8>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(
        "SELECT value FROM store_meta WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .ok()
}

#[actix_web::test]
async fn restore_drill_brings_back_the_accounts_and_keys_of_the_backup() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let kept = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "kept"])
    ));
    let revoked = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "gone"])
    ));
    let ids = import_accounts(dir.path(), || relay(dir.path()), "acct-drill", 2);
    let key_id = MasterKey::read_file(&dir.path().join("master.key"))
        .unwrap()
        .id_hex();
    let (server, addr, _) = serve_with(dir.path(), &mock, &[]).await;
    assert!(eventually(10, || async { ask(&addr, &kept).await == 200 }).await);

    // Backed up while requests keep coming.
    let file = elsewhere.path().join("relay-backup.db");
    let (d, f) = (dir.path().to_owned(), file.clone());
    let backing = std::thread::spawn(move || run(relay(&d).arg("backup").arg(&f)));
    let mut statuses = Vec::new();
    while !backing.is_finished() {
        statuses.push(ask(&addr, &kept).await);
    }
    let output = backing.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        key_id,
        "the key id it needs, alone on stdout"
    );
    assert!(stderr(&output).contains(&format!("needs master key {key_id}")));
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let marked = store_meta(&file, "backup_master_key_id").unwrap();
    assert_eq!(String::from_utf8(marked).unwrap(), key_id);
    let mut names: Vec<String> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["relay-backup.db", "relay-backup.db.audit.db"],
        "a single self-contained file and its audit trail's copy, nothing left beside them"
    );

    // Things change after the backup.
    assert!(run(relay(dir.path()).args(["account", "remove", &ids[1]]))
        .status
        .success());
    assert!(run(relay(dir.path()).args(["key", "revoke", "gone"]))
        .status
        .success());
    assert!(eventually(10, || async { ask(&addr, &revoked).await == 401 }).await);
    assert_eq!(accounts(dir.path()).len(), 1);

    // No restore under a running server.
    let output = run(relay(dir.path()).arg("restore").arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("a server is running on the store"),
        "{}",
        stderr(&output)
    );

    // Killed (its lock dies with it), the server no longer blocks the restore.
    drop(server);
    let output = run(relay(dir.path()).arg("restore").arg(&file));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), key_id);

    let (server, addr, _) = serve_with(dir.path(), &mock, &[]).await;
    let restored: Vec<String> = accounts(dir.path())
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(restored.len(), 2);
    assert!(ids.iter().all(|id| restored.contains(id)), "{restored:?}");
    assert!(eventually(10, || async { ask(&addr, &revoked).await == 200 }).await);
    assert_eq!(ask(&addr, &kept).await, 200);
    drop(server);
    mock.stop().await;
}

#[test]
fn a_backup_under_another_key_is_refused_naming_its_key_unless_forced() {
    let source = tempfile::tempdir().unwrap();
    assert!(
        run(relay(source.path()).args(["key", "create", "--name", "a"]))
            .status
            .success()
    );
    let file = source.path().join("backup.db");
    let output = run(relay(source.path()).arg("backup").arg(&file));
    assert!(output.status.success(), "{}", stderr(&output));
    let backup_key = stdout(&output);
    let source_key = source.path().join("master.key");

    let target = tempfile::tempdir().unwrap();
    let (other_key, _, other_id) = key_file(target.path(), "other.key");
    let with = |key: &Path| {
        let mut command = relay(target.path());
        command.env("CODEX_RELAY_MASTER_KEY_FILE", key);
        command
    };
    assert!(run(with(&other_key).args(["key", "create", "--name", "b"]))
        .status
        .success());
    let output = run(with(&other_key).arg("restore").arg(&file));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("needs master key {backup_key}")),
        "{err}"
    );
    assert!(err.contains(&other_id) && err.contains("--force"), "{err}");
    let listed = stdout(&run(with(&other_key).args(["key", "list"])));
    assert!(listed.contains(" b "), "the store is untouched: {listed}");

    let output = run(with(&other_key).args(["restore", "--force"]).arg(&file));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("give the relay that key"));
    assert!(!run(with(&other_key).args(["key", "list"])).status.success());
    let listed = stdout(&run(with(&source_key).args(["key", "list"])));
    assert!(listed.contains(" a "), "{listed}");

    // Disaster recovery: no store at all, the backup's key from the environment.
    let empty = tempfile::tempdir().unwrap();
    let mut fresh = relay(empty.path());
    fresh.env("CODEX_RELAY_MASTER_KEY_FILE", &source_key);
    assert!(run(fresh.arg("restore").arg(&file)).status.success());
    let mut fresh = relay(empty.path());
    fresh.env("CODEX_RELAY_MASTER_KEY_FILE", &source_key);
    assert!(stdout(&run(fresh.args(["key", "list"]))).contains(" a "));
    // With no key for it anywhere, none is generated: the backup's key id is named.
    let bare = tempfile::tempdir().unwrap();
    let output = run(relay(bare.path()).arg("restore").arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&backup_key), "{}", stderr(&output));
    assert!(!bare.path().join("master.key").exists());

    // A file that is not a backup is refused as such.
    std::fs::write(source.path().join("junk"), b"not a database at all").unwrap();
    let output = run(relay(source.path())
        .arg("restore")
        .arg(source.path().join("junk")));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not"), "{}", stderr(&output));
}

#[test]
fn a_backup_a_newer_relay_wrote_is_refused_even_forced_and_the_store_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(relay(dir.path()).args(["key", "create", "--name", "kept"]));
    assert!(created.status.success(), "{}", stderr(&created));
    let file = dir.path().join("backup.db");
    assert!(run(relay(dir.path()).arg("backup").arg(&file))
        .status
        .success());
    // As a later codex-relay would leave it: a schema this build does not know.
    let conn = Connection::open(&file).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    conn.pragma_update(None, "user_version", version + 1)
        .unwrap();
    drop(conn);
    for args in [&["restore"][..], &["restore", "--force"]] {
        let output = run(relay(dir.path()).args(args).arg(&file));
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {err}");
        assert!(err.contains("newer codex-relay"), "{args:?}: {err}");
    }
    let listed = stdout(&run(relay(dir.path()).args(["key", "list"])));
    assert!(
        listed.contains(" kept "),
        "the store is untouched: {listed}"
    );
}
