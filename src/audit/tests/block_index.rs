//! The block index (`blocks.rs`) as searches and `verify` meet it: a search through it finds
//! exactly what reading every row finds, in the same order and pages; a block is indexed when
//! its last row lands; an edited index is named; retention and a trail of the older schema keep
//! it whole.

use rusqlite::Connection;

use crate::audit::blocks::BLOCK_ROWS;
use crate::audit::chain::append;
use crate::audit::open_for_writing;
use crate::audit::record::{Kind, Record, Row};
use crate::audit::retention::prune;
use crate::audit::search::{export, search, Cursor, Filter};
use crate::audit::verify::{verify, Break};
use crate::audit::Prepared;

/// Row `n` of a trail: values spread unevenly over few tenants and models and many keys, and a
/// time that does not follow the row's place (a request row is written when it ends, with the
/// time it began) and that other rows share.
fn row(n: i64) -> Record {
    let status = match n % 37 {
        0 => 500,
        1 | 2 => 429,
        _ => 200,
    };
    Record {
        at_ms: row_time(n),
        kind: Kind::Request,
        action: match n % 101 {
            50 => "key.create".into(),
            _ => "responses.create".into(),
        },
        request_id: Some(request_id(n)),
        tenant_id: Some(compact_str::format_compact!("tenant-{}", n % 3)),
        key_id: (n % 11 != 0).then(|| compact_str::format_compact!("key-{}", (n * n) % 23)),
        model_served: Some(compact_str::format_compact!("model-{}", n % 5)),
        account_id: Some(compact_str::format_compact!("acct-{}", (n / 7) % 4)),
        status: Some(status),
        ..Record::default()
    }
}

/// Row `n`'s time.
fn row_time(n: i64) -> i64 {
    match n {
        // Many rows at one time, across a block's end (a burst within a millisecond).
        1948..2148 => 1_019_480,
        // A long stream's row: written when it ends, it began more than a block ago.
        _ if n % 97 == 5 => 1_000_000 + n * 10 - 15_000,
        // Times out of order by up to two blocks' worth (blocks overlap in time), and to
        // 40 ms, so that rows share them within blocks and across blocks.
        _ => (1_000_000 + n * 10 - (n * 7919) % 20_000) / 40 * 40,
    }
}

/// Row `n`'s request id: the relay's (`req_` and a UUIDv7 of the row's time, give or take a
/// few milliseconds), or now and then one a client chose.
fn request_id(n: i64) -> compact_str::CompactString {
    if n % 50 == 7 {
        return compact_str::format_compact!("client-{n}");
    }
    let at_ms = u64::try_from(row_time(n) + n % 5).unwrap();
    let random: [u8; 10] = [n.to_le_bytes(), n.to_be_bytes()].concat()[..10]
        .try_into()
        .unwrap();
    let id = uuid::Builder::from_unix_timestamp_millis(at_ms, &random).into_uuid();
    compact_str::format_compact!("req_{}", id.simple())
}

fn trail_of(rows: i64) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_for_writing(&dir.path().join("audit.db")).unwrap();
    let records: Vec<Record> = (0..rows).map(row).collect();
    // In batches of uneven size, as a writer gathers them: blocks fill across batches.
    for batch in records.chunks(333) {
        append(&mut conn, batch).unwrap();
    }
    (dir, conn)
}

/// Every row matching `filter`, newest first, by reading them all.
fn by_reading_all(conn: &Connection, filter: &Filter) -> Vec<i64> {
    let mut all: Vec<Row> = Vec::new();
    export(conn, &Filter::default(), |row| {
        all.push(row.clone());
        Ok(())
    })
    .unwrap();
    let wanted = |value: &Option<String>, actual: Option<&str>| {
        value.as_deref().is_none_or(|value| Some(value) == actual)
    };
    all.retain(|row| {
        let r = &row.record;
        wanted(&filter.tenant, r.tenant_id.as_deref())
            && wanted(&filter.key, r.key_id.as_deref())
            && wanted(&filter.model, r.model())
            && wanted(&filter.account, r.account_id.as_deref())
            && filter.status.is_none_or(|status| r.status == Some(status))
            && wanted(&filter.action, Some(r.action.as_str()))
            && wanted(&filter.request_id, r.request_id.as_deref())
            && filter.since_ms.is_none_or(|since| r.at_ms >= since)
            && filter.until_ms.is_none_or(|until| r.at_ms < until)
    });
    all.sort_by_key(|row| std::cmp::Reverse((row.record.at_ms, row.seq)));
    all.into_iter().map(|row| row.seq).collect()
}

/// Every row matching `filter`, page after page behind the cursor.
fn by_searching(conn: &Connection, filter: &Filter, limit: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = search(conn, filter, cursor, limit).unwrap();
        assert!(page.rows.len() <= limit);
        seqs.extend(page.rows.iter().map(|row| row.seq));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return seqs,
        }
    }
}

fn filters() -> Vec<Filter> {
    let with = |set: &dyn Fn(&mut Filter)| {
        let mut filter = Filter::default();
        set(&mut filter);
        filter
    };
    vec![
        with(&|f| f.tenant = Some("tenant-1".into())),
        with(&|f| f.key = Some("key-4".into())),
        with(&|f| f.key = Some("key-nobody-has".into())),
        with(&|f| f.model = Some("model-3".into())),
        with(&|f| f.account = Some("acct-2".into())),
        with(&|f| {
            f.tenant = Some("tenant-2".into());
            f.key = Some("key-9".into());
        }),
        with(&|f| {
            f.model = Some("model-0".into());
            f.account = Some("acct-1".into());
            f.status = Some(429);
        }),
        with(&|f| {
            f.key = Some("key-13".into());
            f.since_ms = Some(1_008_000);
            f.until_ms = Some(1_021_000);
        }),
        // Through the index: a rare status, a rare action, with another value.
        with(&|f| f.status = Some(500)),
        with(&|f| f.action = Some("key.create".into())),
        with(&|f| {
            f.status = Some(429);
            f.tenant = Some("tenant-0".into());
        }),
        // By reading the segments in time order.
        with(&|_| {}),
        with(&|f| f.status = Some(200)),
        with(&|f| f.action = Some("responses.create".into())),
        with(&|f| {
            f.since_ms = Some(1_008_000);
            f.until_ms = Some(1_021_000);
        }),
        // A request id the relay made, and one a client chose.
        with(&|f| f.request_id = Some(request_id(2000).into())),
        with(&|f| f.request_id = Some(request_id(2007).into())),
        with(&|f| {
            f.request_id = Some(request_id(3000).into());
            f.model = Some("model-0".into());
        }),
    ]
}

#[test]
fn a_search_through_the_block_index_finds_what_reading_every_row_finds() {
    // Four full blocks and a fifth filling.
    let (_dir, conn) = trail_of(4 * BLOCK_ROWS + 300);
    let blocks: i64 = conn
        .query_row("SELECT count(*) FROM audit_blocks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(blocks, 4);
    for filter in filters() {
        let expected = by_reading_all(&conn, &filter);
        if filter.request_id.is_some() && filter.model.is_none() {
            assert_eq!(expected.len(), 1, "{filter:?}");
        }
        // Pages of a few rows over nearly every row would read the trail's overlapping
        // segments a thousand times over: that case is left to larger pages.
        let limits: &[usize] = match expected.len() > 4000 {
            true => &[100, 5000],
            false => &[3, 10, 100, 5000],
        };
        for &limit in limits {
            assert_eq!(
                by_searching(&conn, &filter, limit),
                expected,
                "{filter:?}, pages of {limit}"
            );
        }
    }
}

#[test]
fn a_block_is_indexed_when_its_last_row_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_for_writing(&dir.path().join("audit.db")).unwrap();
    let count = |conn: &Connection, table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    };
    let records: Vec<Record> = (0..BLOCK_ROWS).map(row).collect();
    append(&mut conn, &records[..BLOCK_ROWS as usize - 1]).unwrap();
    assert_eq!(count(&conn, "audit_blocks"), 0);
    append(&mut conn, &records[BLOCK_ROWS as usize - 1..]).unwrap();
    assert_eq!(count(&conn, "audit_blocks"), 1);
    // 3 tenants, 23 keys at most, 5 models, 4 accounts, statuses 429 and 500, one act.
    let postings = count(&conn, "audit_postings");
    assert!((15..=38).contains(&postings), "{postings}");
    let places: Vec<u8> = conn
        .query_row(
            "SELECT rows FROM audit_postings WHERE block = 0 AND facet = 'm:model-3'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let rows = records
        .iter()
        .filter(|r| r.model() == Some("model-3"))
        .count();
    assert_eq!(places.len(), 2 * rows);
    // Places are ascending: row n (seq n + 1) has model n % 5, so model-3 is at 3, 8, 13 …
    assert_eq!(&places[..6], &[3, 0, 8, 0, 13, 0]);
}

#[test]
fn an_edited_block_index_is_named_by_verify() {
    let edits = [
        "UPDATE audit_postings SET rows = substr(rows, 3) WHERE block = 0 AND facet = 'k:key-4'",
        "DELETE FROM audit_postings WHERE block = 1 AND facet = 't:tenant-0'",
        "INSERT INTO audit_postings (block, facet, rows) VALUES (0, 'k:key-x', x'0100')",
        "UPDATE audit_blocks SET max_at_ms = 0 WHERE block = 1",
    ];
    for (n, edit) in edits.into_iter().enumerate() {
        let (_dir, conn) = trail_of(2 * BLOCK_ROWS + 5);
        assert_eq!(verify(&conn).unwrap().broken, None);
        conn.execute(edit, []).unwrap();
        let block = if n % 2 == 0 { 0 } else { 1 };
        assert_eq!(
            verify(&conn).unwrap().broken,
            Some(Break::Index {
                seq: block * BLOCK_ROWS + 1,
                last: (block + 1) * BLOCK_ROWS
            }),
            "{edit}"
        );
    }
}

#[test]
fn retention_drops_the_index_of_blocks_pruned_whole_and_searches_stay_right() {
    let (_dir, mut conn) = trail_of(3 * BLOCK_ROWS + 10);
    // Rows are a little out of time order, so the cut falls near row 1.5 blocks in.
    let cutoff = row(BLOCK_ROWS + BLOCK_ROWS / 2).at_ms;
    let pruned = prune(&mut conn, cutoff).unwrap() as i64;
    assert!((BLOCK_ROWS..2 * BLOCK_ROWS).contains(&pruned), "{pruned}");
    let indexed: Vec<i64> = conn
        .prepare("SELECT DISTINCT block FROM audit_postings ORDER BY block")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(indexed, [1, 2]);
    assert_eq!(verify(&conn).unwrap().broken, None);
    for filter in filters() {
        assert_eq!(
            by_searching(&conn, &filter, 50),
            by_reading_all(&conn, &filter)
        );
    }
    // Pruned to the end: the newest block's time range stays, and the next block is indexed.
    let all = prune(&mut conn, i64::MAX).unwrap() as i64;
    assert_eq!(pruned + all, 3 * BLOCK_ROWS + 10);
    let records: Vec<Record> = (0..BLOCK_ROWS).map(row).collect();
    append(&mut conn, &records).unwrap();
    let last: i64 = conn
        .query_row("SELECT max(block) FROM audit_postings", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(last, 3);
    assert_eq!(verify(&conn).unwrap().broken, None);
    for filter in filters() {
        assert_eq!(
            by_searching(&conn, &filter, 50),
            by_reading_all(&conn, &filter)
        );
    }
}

#[test]
fn a_trail_of_the_per_row_indexes_converts_to_segments_and_is_indexed_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let conn = Connection::open(&path).unwrap();
        for migration in &crate::audit::file::MIGRATIONS[..2] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        let records: Vec<Record> = (0..2 * BLOCK_ROWS + 3).map(row).collect();
        super::append_rows(&conn, &records);
    }
    let conn = open_for_writing(&path).unwrap();
    // Its pages keep the size it was made with (a new trail's are 8 KiB).
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    assert_eq!(page_size, 4096);
    let blocks: i64 = conn
        .query_row("SELECT count(*) FROM audit_blocks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(blocks, 2);
    assert_eq!(verify(&conn).unwrap().broken, None);
    for filter in filters() {
        assert_eq!(
            by_searching(&conn, &filter, 100),
            by_reading_all(&conn, &filter),
            "{filter:?}"
        );
    }
}

#[test]
fn a_block_filled_by_another_process_is_indexed_from_its_rows() {
    // The writer builds a block's index as it appends; rows the CLI appended in between are
    // read back, and the index is the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut server = open_for_writing(&path).unwrap();
    let mut cli = open_for_writing(&path).unwrap();
    let mut appender = crate::audit::chain::Appender::new().unwrap();
    let records: Vec<Record> = (0..2 * BLOCK_ROWS + 10).map(row).collect();
    for (n, batch) in records.chunks(100).enumerate() {
        match n % 4 {
            3 => append(&mut cli, batch).unwrap(),
            _ => {
                let rows: Vec<Prepared> = batch.iter().map(Prepared::of).collect();
                appender.append(&mut server, &rows).unwrap()
            }
        };
    }
    assert_eq!(verify(&server).unwrap().broken, None);
    let blocks: i64 = server
        .query_row("SELECT count(*) FROM audit_blocks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(blocks, 2);
    for filter in filters() {
        assert_eq!(
            by_searching(&server, &filter, 100),
            by_reading_all(&server, &filter),
            "{filter:?}"
        );
    }
}
