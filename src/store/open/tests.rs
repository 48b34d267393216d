use std::time::Instant;

use super::*;

fn key() -> MasterKey {
    MasterKey::from_bytes(&[7; 32]).unwrap()
}

#[test]
fn opening_twice_migrates_once_and_accepts_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/relay.db");
    drop(Store::open(&path, 2, key()).unwrap());
    let store = Store::open(&path, 2, key()).unwrap();
    let version: i64 = store
        .conn()
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}

#[test]
fn a_wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    drop(Store::open(&path, 2, MasterKey::generate()).unwrap());
    let err = Store::open(&path, 2, MasterKey::generate()).unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("CODEX_RELAY_MASTER_KEY"));
    let err = Store::open_read_only(&path, 2, MasterKey::generate()).unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
}

#[test]
fn threads_opening_a_fresh_store_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let start = std::sync::Barrier::new(8);
    let opened: Vec<Result<Store, StoreError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    Store::open(&path, 1, key())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for result in opened {
        assert!(result.is_ok(), "{}", result.unwrap_err());
    }
    let store = Store::open(&path, 1, key()).unwrap();
    let canaries: i64 = store
        .conn()
        .unwrap()
        .query_row("SELECT count(*) FROM store_meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(canaries, 1);
}

#[test]
fn a_file_that_is_not_a_store_is_refused_at_once_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    for read_only in [false, true] {
        let started = Instant::now();
        let err = if read_only {
            Store::open_read_only(&path, 2, key()).unwrap_err()
        } else {
            Store::open(&path, 2, key()).unwrap_err()
        };
        assert!(started.elapsed() < Duration::from_secs(1), "{err}");
        let text = err.to_string();
        assert!(text.contains("not a codex-relay store"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
    assert!(sealing_key_id(&path).is_err());
}

#[test]
fn a_read_only_open_writes_nothing_and_refuses_an_outdated_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    drop(Store::open(&path, 2, key()).unwrap());
    let store = Store::open_read_only(&path, 2, key()).unwrap();
    assert!(store.list_accounts().unwrap().is_empty());
    let Err(err) = store.create_key("nope") else {
        panic!("a read-only store took a write");
    };
    assert!(err.to_string().contains("readonly"), "{err}");
    drop(store);

    let raw = Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 2).unwrap();
    drop(raw);
    let err = Store::open_read_only(&path, 2, key()).unwrap_err();
    assert!(
        matches!(err, StoreError::Outdated { found: 2, .. }),
        "{err}"
    );
}

#[test]
fn the_sealing_key_is_read_without_the_key_and_only_once_something_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    assert_eq!(sealing_key_id(&path).unwrap(), None, "no store yet");
    std::fs::write(&path, "").unwrap();
    assert_eq!(sealing_key_id(&path).unwrap(), None, "an empty file");
    drop(Store::open(&path, 2, key()).unwrap());
    assert_eq!(sealing_key_id(&path).unwrap(), Some(key().id_hex()));
}
