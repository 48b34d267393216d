//! The chain as `verify` sees it: every kind of tampering named at its row, retention keeping
//! it whole, appends from two connections (two processes) never forking it; the writer woken
//! when a batch is full. The block index as searches and `verify` meet it: `block_index.rs`.

mod block_index;

use rusqlite::{params, Connection};

use super::canonical::canonical;
use super::chain::{append, link, GENESIS};
use super::record::{Kind, Record};
use super::retention::prune;
use super::segment::{fields, Packer, Segment};
use super::verify::{verify, Break};
use super::{open_for_reading, open_for_writing};

/// Rewrites the segment holding row `seq` as someone with write access to the file would: its
/// lines and hashes edited by `edit`, its bounds made to agree with what it then holds.
pub(super) fn tamper(
    conn: &Connection,
    seq: i64,
    edit: impl FnOnce(&mut Vec<String>, &mut Vec<Vec<u8>>),
) {
    let segment = Segment::holding(conn, seq).unwrap().unwrap();
    let mut lines: Vec<String> = segment.text.split('\n').map(str::to_owned).collect();
    let mut hashes: Vec<Vec<u8>> = segment.hashes.chunks(32).map(<[u8]>::to_vec).collect();
    edit(&mut lines, &mut hashes);
    let times = lines.iter().fold((i64::MAX, i64::MIN), |(min, max), line| {
        let at_ms = fields(line).map_or(0, |record| record.at_ms);
        (min.min(at_ms), max.max(at_ms))
    });
    conn.execute(
        "DELETE FROM audit_segments WHERE first_seq = ?1",
        [segment.first_seq],
    )
    .unwrap();
    Packer::new()
        .unwrap()
        .insert(
            conn,
            segment.first_seq,
            lines.join("\n").as_bytes(),
            &hashes.concat(),
            times,
        )
        .unwrap();
}

/// Appends `records` to a trail of an older schema (one row a record, in `audit_rows`), as the
/// relay did before segments.
pub(super) fn append_rows(conn: &Connection, records: &[Record]) {
    let head = super::chain::head(conn).unwrap();
    let (mut seq, mut hash) = (head.seq, head.hash);
    for record in records {
        seq += 1;
        let content = canonical(seq, record).unwrap();
        hash = link(&hash, &content);
        conn.execute(
            "INSERT INTO audit_rows (seq, at_ms, kind, action, tenant_id, key_id, model,
                 account_id, status, request_id, capture_id, content, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                seq,
                record.at_ms,
                record.kind.as_str(),
                record.action.as_str(),
                record.tenant_id.as_deref(),
                record.key_id.as_deref(),
                record.model(),
                record.account_id.as_deref(),
                record.status,
                record.request_id.as_deref(),
                record.capture_id.as_deref(),
                content,
                hash,
            ],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)",
        params![seq, hash],
    )
    .unwrap();
}

/// A file of the schema before segments (`audit_rows`), at `path`, holding `records`.
pub(super) fn trail_of_rows(path: &std::path::Path, records: &[Record]) {
    let conn = Connection::open(path).unwrap();
    for migration in &super::file::MIGRATIONS[..3] {
        conn.execute_batch(migration).unwrap();
    }
    conn.pragma_update(None, "user_version", 3).unwrap();
    append_rows(&conn, records);
}

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
    tamper(&conn, 3, |lines, _| {
        lines[2] = lines[2].replace("gpt-5", "gpt-4")
    });
    assert!(matches!(broken(&conn), Some(Break::Edited { seq: 3, .. })));
}

#[test]
fn an_edited_hash_is_named() {
    let (_dir, conn) = trail(5);
    tamper(&conn, 4, |_, hashes| hashes[3][0] ^= 1);
    let found = broken(&conn).unwrap();
    assert_eq!(found.seq(), 4);
    assert!(found.to_string().contains("its hash"), "{found}");
}

#[test]
fn an_edited_time_range_of_a_segment_is_named() {
    // Searches go by a segment's times: a range edited to hide its rows from them is found.
    let (_dir, conn) = trail(5);
    conn.execute("UPDATE audit_segments SET max_at_ms = 0", [])
        .unwrap();
    let found = broken(&conn).unwrap();
    assert_eq!(found.seq(), 1);
    assert!(found.to_string().contains("time range"), "{found}");
}

#[test]
fn an_unreadable_segment_is_named() {
    let (_dir, conn) = trail(5);
    conn.execute("UPDATE audit_segments SET lines = x'00'", [])
        .unwrap();
    let found = broken(&conn).unwrap();
    assert!(matches!(found, Break::Edited { seq: 1, .. }), "{found}");
}

#[test]
fn a_deleted_row_is_named() {
    let (_dir, conn) = trail(5);
    tamper(&conn, 2, |lines, hashes| {
        lines.remove(1);
        hashes.remove(1);
    });
    assert_eq!(broken(&conn), Some(Break::Deleted { seq: 2 }));
}

#[test]
fn a_deleted_segment_is_named_at_its_first_row() {
    let (_dir, mut conn) = trail(2);
    append(
        &mut conn,
        &[request(3_000_000, "a"), request(3_000_001, "b")],
    )
    .unwrap();
    append(&mut conn, &[request(3_000_002, "c")]).unwrap();
    conn.execute("DELETE FROM audit_segments WHERE first_seq = 3", [])
        .unwrap();
    assert_eq!(broken(&conn), Some(Break::Deleted { seq: 3 }));
}

#[test]
fn reordered_rows_are_named() {
    let (_dir, conn) = trail(5);
    tamper(&conn, 2, |lines, hashes| {
        lines.swap(1, 2);
        hashes.swap(1, 2);
    });
    assert_eq!(broken(&conn), Some(Break::Moved { seq: 2, holds: 3 }));
}

#[test]
fn reordered_segments_are_named() {
    let (_dir, mut conn) = trail(1);
    for at in 0..3 {
        append(&mut conn, &[request(3_000_000 + at, "a")]).unwrap();
    }
    conn.execute_batch(
        "UPDATE audit_segments SET first_seq = -2, last_seq = -2 WHERE first_seq = 2;
         UPDATE audit_segments SET first_seq = 2, last_seq = 2 WHERE first_seq = 4;
         UPDATE audit_segments SET first_seq = 4, last_seq = 4 WHERE first_seq = -2;",
    )
    .unwrap();
    assert_eq!(broken(&conn), Some(Break::Moved { seq: 2, holds: 4 }));
}

#[test]
fn a_cut_tail_is_named() {
    let (_dir, conn) = trail(5);
    tamper(&conn, 4, |lines, hashes| {
        lines.truncate(3);
        hashes.truncate(3);
    });
    assert_eq!(broken(&conn), Some(Break::CutOff { seq: 4, head: 5 }));
}

#[test]
fn rows_after_the_recorded_head_are_named() {
    let (_dir, conn) = trail(3);
    conn.execute("UPDATE audit_head SET seq = 2", []).unwrap();
    assert_eq!(broken(&conn), Some(Break::Appended { seq: 3 }));
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
    tamper(&conn, 5, |lines, hashes| {
        lines.remove(0);
        hashes.remove(0);
    });
    assert_eq!(broken(&conn), Some(Break::Deleted { seq: 5 }));
}

#[test]
fn pruning_by_whole_segments_and_a_split_one_keeps_every_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_for_writing(&dir.path().join("audit.db")).unwrap();
    // Segments of 64, 64 and 22 rows, one a second.
    let records: Vec<Record> = (0..150)
        .map(|i| request(1_000_000 + i * 1000, "gpt-5"))
        .collect();
    append(&mut conn, &records).unwrap();
    let hash_of = |conn: &Connection, seq| {
        let segment = Segment::holding(conn, seq).unwrap().unwrap();
        segment.row(seq).unwrap().unwrap().hash
    };
    let (hash_100, hash_69) = (hash_of(&conn, 100), hash_of(&conn, 69));
    // Rows 1..=69 are older than t = 1069 s: one segment whole, five rows of the next.
    assert_eq!(prune(&mut conn, 1_069_000).unwrap(), 69);
    let report = verify(&conn).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!((report.anchor.seq, report.anchor.hash), (69, hash_69));
    assert_eq!((report.rows, report.head.seq), (81, 150));
    assert_eq!(hash_of(&conn, 100), hash_100);
    let first: i64 = conn
        .query_row("SELECT min(first_seq) FROM audit_segments", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(first, 70);
    // Nothing older is left: pruning again changes nothing.
    assert_eq!(prune(&mut conn, 1_069_000).unwrap(), 0);
    assert_eq!(prune(&mut conn, i64::MAX).unwrap(), 81);
    let report = verify(&conn).unwrap();
    assert_eq!(
        (report.broken, report.rows, report.anchor.seq),
        (None, 0, 150)
    );
}

#[test]
fn a_trail_of_rows_converts_to_segments_with_every_hash_and_an_edit_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let records: Vec<Record> = (0..100)
        .map(|i| request(1_000_000 + i * 1000, "gpt-5"))
        .collect();
    trail_of_rows(&path, &records);
    let rows = Connection::open(&path).unwrap();
    let hashes: Vec<String> = rows
        .prepare("SELECT hash FROM audit_rows ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let first_hash = link(GENESIS, &canonical(1, &records[0]).unwrap());
    assert_eq!(hashes[0], first_hash);
    let conn = open_for_writing(&path).unwrap();
    let report = verify(&conn).unwrap();
    assert_eq!((report.broken, report.rows), (None, 100));
    for seq in [1, 64, 65, 100] {
        let segment = Segment::holding(&conn, seq).unwrap().unwrap();
        assert_eq!(
            segment.row(seq).unwrap().unwrap().hash,
            hashes[seq as usize - 1]
        );
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'audit_rows'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    // A row edited before the conversion is still named after it.
    let edited_path = dir.path().join("edited.db");
    trail_of_rows(&edited_path, &records);
    Connection::open(&edited_path)
        .unwrap()
        .execute(
            "UPDATE audit_rows SET content = replace(content, 'gpt-5', 'gpt-4') WHERE seq = 70",
            [],
        )
        .unwrap();
    let conn = open_for_reading(&edited_path).unwrap();
    assert!(matches!(broken(&conn), Some(Break::Edited { seq: 70, .. })));
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
