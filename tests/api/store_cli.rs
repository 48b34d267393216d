//! The store on disk, through the real binary: private files whatever the umask, a master key
//! that is never silently replaced, a store that is not one or cannot be written failing at
//! once with its cause, processes starting together on a fresh store, and accounts whose sealed
//! tokens no longer open.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use codex_relay::store::MasterKey;
use serde_json::Value;

use crate::cli::{relay, relay_with_umask, run, serve_with, stderr, stdout, write_auth};
use crate::helpers::eventually;
use crate::mock_upstream::MockUpstream;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The binary with its store in `dir/data`, under `umask`.
fn relay_in_data(dir: &Path, umask: &str) -> Command {
    let mut command = relay_with_umask(dir, umask);
    command.env("CODEX_RELAY__STORE__PATH", dir.join("data/relay.db"));
    command
}

#[actix_web::test]
async fn the_store_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = run(relay_in_data(dir.path(), "000").args(["key", "create", "--name", "ci"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("relay.db")), 0o600, "the database");
    assert_eq!(mode(&data.join("master.key")), 0o600, "the master key");

    // While a server has the store open, SQLite's -wal and -shm files exist: private too.
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let served = serve_with(relay_in_data(dir.path(), "000"), &mock);
    let companions = ["relay.db-wal", "relay.db-shm"].map(|name| data.join(name));
    assert!(
        eventually(5, || async { companions.iter().all(|f| f.exists()) }).await,
        "the server opened the store in WAL mode"
    );
    for file in &companions {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    drop(served);
    mock.stop().await;
}

#[test]
fn an_open_store_from_before_is_made_private_and_a_shared_folder_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        run(relay_in_data(dir.path(), "022").args(["key", "create", "--name", "a"]))
            .status
            .success()
    );
    // As an older relay left it: a world-readable folder and database.
    set_mode(&data, 0o755);
    set_mode(&data.join("relay.db"), 0o644);
    let output = run(relay_in_data(dir.path(), "022").args(["key", "create", "--name", "b"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!((mode(&data), mode(&data.join("relay.db"))), (0o700, 0o600));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    // A folder that holds more than the store is not the relay's to change: it says so.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o755);
    std::fs::write(shared.join("notes.txt"), "someone else's").unwrap();
    let output = run(relay_with_umask(dir.path(), "022")
        .env("CODEX_RELAY__STORE__PATH", shared.join("relay.db"))
        .args(["key", "create", "--name", "c"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&shared.join("relay.db")), 0o600);
    let warning = stderr(&output);
    assert!(
        warning.contains("warning") && warning.contains("0755"),
        "{warning}"
    );
    assert!(warning.contains(&shared.display().to_string()), "{warning}");
}

#[test]
fn a_missing_master_key_beside_a_sealed_store_is_refused_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, _) = write_auth(dir.path(), "auth.json", "acct-key-1", "key@example.com");
    let imported = run(relay(dir.path()).args(["account", "import"]).arg(&auth));
    assert!(imported.status.success(), "{}", stderr(&imported));
    let key_file = dir.path().join("master.key");
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();

    for command in [
        &["account", "list"][..],
        &["key", "create", "--name", "x"],
        &["serve"],
    ] {
        let output = run(relay(dir.path()).args(command));
        assert!(!output.status.success(), "{command:?}");
        let message = stderr(&output);
        for needle in [
            "master.key",
            "CODEX_RELAY_MASTER_KEY_FILE",
            "backup",
            "store.path",
        ] {
            assert!(message.contains(needle), "{command:?}: {message}");
        }
        assert!(!message.contains("generated a new"), "{message}");
        assert!(!key_file.exists(), "{command:?} wrote a new master key");
    }

    std::fs::write(&key_file, saved).unwrap();
    let listed = run(relay(dir.path()).args(["account", "list", "--json"]));
    assert!(listed.status.success(), "{}", stderr(&listed));
    let accounts: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(accounts[0]["state"], "active");
}

#[test]
fn a_file_that_is_not_a_store_fails_at_once_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    std::fs::write(&db, "this is not a database, only text. ".repeat(200)).unwrap();
    for command in [&["account", "list"][..], &["key", "create", "--name", "x"]] {
        let started = Instant::now();
        let output = run(relay(dir.path()).args(command));
        let took = started.elapsed();
        assert!(!output.status.success(), "{command:?}");
        assert!(took < Duration::from_secs(1), "{command:?} took {took:?}");
        let message = stderr(&output);
        assert!(message.contains("not a codex-relay store"), "{message}");
        assert!(message.contains(&db.display().to_string()), "{message}");
    }
    assert!(
        !dir.path().join("master.key").exists(),
        "no key is generated beside a file that is not a store"
    );
}

/// Makes `dir` and its files read-only for the commands `as_reader` prepares: as root (whom
/// permissions do not stop), they run as `nobody`, owner of a read-only copy.
fn read_only(dir: &Path) -> impl Fn(&mut Command) -> &mut Command {
    let root = nix::unistd::geteuid().is_root();
    const NOBODY: u32 = 65534;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if root {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        set_mode(&path, 0o400);
    }
    if root {
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    set_mode(dir, 0o500);
    move |command: &mut Command| {
        if root {
            command.uid(NOBODY).gid(NOBODY);
        }
        command
    }
}

#[test]
fn a_read_only_store_can_be_listed_and_refuses_changes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, _) = write_auth(dir.path(), "auth.json", "acct-ro-1", "ro@example.com");
    let id = stdout(&run(relay(dir.path())
        .args(["account", "import"])
        .arg(&auth)));
    assert!(
        run(relay(dir.path()).args(["key", "create", "--name", "ci"]))
            .status
            .success()
    );
    std::fs::remove_file(&auth).unwrap();
    let as_reader = read_only(dir.path());

    for list in [
        &["account", "list", "--json"][..],
        &["key", "list"],
        &["account", "list"],
    ] {
        let started = Instant::now();
        let output = run(as_reader(relay(dir.path()).args(list)));
        assert!(output.status.success(), "{list:?}: {}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(1), "{list:?}");
        assert!(stdout(&output).contains(if list[0] == "key" { "ci" } else { &id }));
    }
    let started = Instant::now();
    let output = run(as_reader(
        relay(dir.path()).args(["key", "create", "--name", "x"]),
    ));
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(1));
    let message = stderr(&output);
    assert!(message.contains("read-only"), "{message}");
    assert!(message.contains("account list"), "{message}");
    set_mode(dir.path(), 0o700);
}

#[test]
fn processes_starting_together_on_a_fresh_store_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..8)
        .map(|n| {
            relay(dir.path())
                .args(["key", "create", "--name", &format!("k{n}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let listed = stdout(&run(relay(dir.path()).args(["key", "list", "--json"])));
    let keys: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 8);
}

/// Replaces an account's sealed tokens: resealed under `key` (another master key), or damaged.
pub fn spoil_tokens(db: &Path, account_id: &str, key: Option<&MasterKey>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for column in ["id_token", "access_token", "refresh_token"] {
        let sealed: Vec<u8> = match key {
            Some(key) => key.seal(account_id, column, b"a token from elsewhere"),
            None => {
                let sql = format!("SELECT {column} FROM account_tokens WHERE account_id = ?1");
                let mut value: Vec<u8> = conn.query_row(&sql, [account_id], |r| r.get(0)).unwrap();
                *value.last_mut().unwrap() ^= 0xff;
                value
            }
        };
        let sql = format!("UPDATE account_tokens SET {column} = ?2 WHERE account_id = ?1");
        assert_eq!(
            conn.execute(&sql, rusqlite::params![account_id, sealed])
                .unwrap(),
            1
        );
    }
}

#[test]
fn accounts_whose_tokens_do_not_open_are_listed_as_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for n in 1..=3 {
        let (auth, _) = write_auth(
            dir.path(),
            "auth.json",
            &format!("acct-u-{n}"),
            "u@example.com",
        );
        ids.push(stdout(&run(relay(dir.path())
            .args(["account", "import"])
            .arg(&auth))));
    }
    let db = dir.path().join("relay.db");
    spoil_tokens(&db, &ids[1], Some(&MasterKey::generate()));
    spoil_tokens(&db, &ids[2], None);

    let listed = run(relay(dir.path()).args(["account", "list", "--json"]));
    assert!(listed.status.success(), "{}", stderr(&listed));
    let accounts: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let account = |n: usize| {
        let all = accounts.as_array().unwrap();
        all.iter()
            .find(|a| a["id"] == ids[n].as_str())
            .unwrap()
            .clone()
    };
    let state = |n: usize| account(n)["state"].as_str().unwrap().to_owned();
    let reason = |n: usize| account(n)["reason"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        [state(0), state(1), state(2)],
        ["active", "unreadable", "unreadable"]
    );
    assert!(
        reason(1).contains("sealed with master key"),
        "{}",
        reason(1)
    );
    assert!(reason(2).contains("damaged"), "{}", reason(2));
    assert!(reason(1).contains("account import"), "{}", reason(1));

    let table = run(relay(dir.path()).args(["account", "list"]));
    let rows = stdout(&table);
    let row = |id: &str| rows.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    assert!(row(&ids[1]).contains("unreadable"), "{rows}");
    assert!(row(&ids[0]).contains("active"), "{rows}");
    assert!(
        stderr(&table).contains("is unreadable"),
        "{}",
        stderr(&table)
    );
}
