//! The chain as `verify` sees it: every kind of tampering named at its row, retention keeping
//! it whole, appends from two connections (two processes) never forking it; the writer woken
//! when a batch is full. The block index as searches and `verify` meet it: `block_index.rs`.

mod block_index;

use rusqlite::Connection;

use super::chain::append;
use super::record::{Kind, Record};
use super::retention::prune;
use super::verify::{verify, Break};
use super::{open_for_reading, open_for_writing};

fn request(at_ms: i64, model: &str) -> Record {
    Record {
        at_ms,
        kind: Kind::Request,
        action: "responses.create".into(),
        key_id: Some("key_1".into()),
        model_requested: Some(model.into()),
        status: Some(200),
        ..Record::default()
    }
}

/// A trail of `rows` rows, one a second from t = 1000 s.
fn trail(rows: i64) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut conn = open_for_writing(&path).unwrap();
    let records: Vec<Record> = (0..rows)
        .map(|i| request(1_000_000 + i * 1000, "gpt-5"))
        .collect();
    append(&mut conn, &records).unwrap();
    (dir, conn)
}

fn broken(conn: &Connection) -> Option<Break> {
    verify(conn).unwrap().broken
}

#[test]
fn an_untouched_chain_verifies_from_genesis_to_its_head() {
    let (_dir, conn) = trail(5);
    let report = verify(&conn).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!((report.rows, report.head.seq), (5, 5));
}

#[test]
fn a_new_trail_has_pages_of_8_kib_and_stays_in_wal_mode() {
    let (_dir, conn) = trail(1);
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|value| match value {
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Text(text) => text,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    assert_eq!(pragma("page_size"), "8192");
    assert_eq!(pragma("journal_mode"), "wal");
}

#[test]
fn an_edited_row_is_named() {
    let (_dir, conn) = trail(5);
    conn.execute(
        "UPDATE audit_rows SET content = replace(content, 'gpt-5', 'gpt-4') WHERE seq = 3",
        [],
    )
    .unwrap();
    assert!(matches!(broken(&conn), Some(Break::Edited { seq: 3, .. })));
}

#[test]
fn an_edited_search_column_is_named() {
    let (_dir, conn) = trail(5);
    conn.execute("UPDATE audit_rows SET key_id = 'key_2' WHERE seq = 2", [])
        .unwrap();
    let found = broken(&conn).unwrap();
    assert_eq!(found.seq(), 2);
    assert!(found.to_string().contains("key_id"), "{found}");
}

#[test]
fn a_deleted_row_is_named() {
    let (_dir, conn) = trail(5);
    conn.execute("DELETE FROM audit_rows WHERE seq = 2", [])
        .unwrap();
    assert_eq!(broken(&conn), Some(Break::Deleted { seq: 2 }));
}

#[test]
fn reordered_rows_are_named() {
    let (_dir, conn) = trail(5);
    conn.execute_batch(
        "UPDATE audit_rows SET seq = -1 WHERE seq = 2;
         UPDATE audit_rows SET seq = 2 WHERE seq = 3;
         UPDATE audit_rows SET seq = 3 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(broken(&conn), Some(Break::Moved { seq: 2, holds: 3 }));
}

#[test]
fn a_cut_tail_is_named() {
    let (_dir, conn) = trail(5);
    conn.execute("DELETE FROM audit_rows WHERE seq >= 4", [])
        .unwrap();
    assert_eq!(broken(&conn), Some(Break::CutOff { seq: 4, head: 5 }));
}

#[test]
fn pruning_keeps_the_chain_verifiable_from_its_anchor() {
    let (_dir, mut conn) = trail(10);
    // Rows 1..=4 are older than t = 1004 s.
    assert_eq!(prune(&mut conn, 1_004_000).unwrap(), 4);
    let report = verify(&conn).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(
        (report.anchor.seq, report.rows, report.head.seq),
        (4, 6, 10)
    );
    append(&mut conn, &[request(2_000_000, "gpt-5")]).unwrap();
    assert_eq!(verify(&conn).unwrap().broken, None);
    // The first row after the anchor removed behind retention's back is still found.
    conn.execute("DELETE FROM audit_rows WHERE seq = 5", [])
        .unwrap();
    assert_eq!(broken(&conn), Some(Break::Deleted { seq: 5 }));
}

#[test]
fn appends_from_two_connections_continue_one_chain() {
    let (dir, mut server) = trail(2);
    let mut cli = open_for_writing(&dir.path().join("audit.db")).unwrap();
    append(&mut cli, &[request(3_000_000, "a")]).unwrap();
    append(&mut server, &[request(3_000_001, "b")]).unwrap();
    let reader = open_for_reading(&dir.path().join("audit.db")).unwrap();
    let report = verify(&reader).unwrap();
    assert_eq!((report.broken, report.rows), (None, 4));
}

/// The writer's queue as the request path fills it: with an interval far longer than the test,
/// a batch of `flush_rows` rows and a flush are each written at once (the writer sleeps between
/// looks at the queue and is woken for them), and a partial batch waits for its interval.
#[test]
#[allow(clippy::disallowed_methods)] // a plain thread waiting on another, no arbiter here
fn a_full_batch_or_a_flush_wakes_the_writer_before_its_interval() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut settings = crate::settings::Settings::defaults().unwrap();
    settings.audit.path = path.clone();
    settings.audit.flush_interval_ms = 60_000;
    settings.audit.flush_rows = 3;
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let audit = super::Audit::start(&settings, super::AuditMetrics::default(), &log);
    let written = || {
        let conn = open_for_reading(&path).unwrap();
        super::chain::head(&conn).unwrap().seq
    };
    let wait_for = |rows: i64| {
        let began = Instant::now();
        while written() < rows {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "{rows} rows not written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for at in 0..3 {
        audit.record(request(at, "gpt-5"));
    }
    wait_for(3);
    audit.record(request(3, "gpt-5"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(written(), 3, "a partial batch waits for its interval");
    assert!(audit.flush(Duration::from_secs(20)));
    assert_eq!(written(), 4);
}
