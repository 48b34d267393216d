//! The audit trail's search over a million rows: fills a trail (`--rows`, default 1 000 000) in
//! a temporary folder with requests spread over 30 days (50 tenants, 500 keys, 10 models, 20
//! accounts, a few errors and admin acts), then times each kind of search `audit search` and
//! `GET /admin/v1/audit` run, a page deep behind a cursor, and `verify` over the whole chain; and
//! what the writer spends per row appended to a trail that large.
//! `cargo run --release --example audit_bench`; the figures are in docs/performance.md.
//! With `--convert`: fills a trail as codex-relay wrote it before segments (a SQLite row per
//! audit row) and times its conversion when the trail is first opened, and `verify` after it.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use compact_str::format_compact;
use sha2::Digest;

use codex_relay::audit::search::{search, Cursor, Filter};
use codex_relay::audit::verify::verify;
use codex_relay::audit::{
    append, open_for_reading, open_for_writing, ActorKind, Appender, Kind, Prepared, Record,
};

const DAY_MS: i64 = 86_400_000;

fn main() {
    let rows: i64 = std::env::args()
        .skip_while(|a| a != "--rows")
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("--rows N"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let now = chrono::Utc::now().timestamp_millis();
    let start = now - 30 * DAY_MS;
    if std::env::args().any(|a| a == "--convert") {
        return convert(&path, rows, start);
    }
    let began = Instant::now();
    let mut conn = open_for_writing(&path).expect("the trail opens");
    let batch = 10_000;
    for first in (0..rows).step_by(batch as usize) {
        let records: Vec<Record> = (first..(first + batch).min(rows))
            .map(|n| row(n, start + n * (30 * DAY_MS) / rows))
            .collect();
        append(&mut conn, &records).expect("a batch is written");
    }
    let filled = began.elapsed();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "filled {rows} rows in {:.1} s ({:.0} rows/s), {} MB",
        filled.as_secs_f64(),
        rows as f64 / filled.as_secs_f64(),
        size / 1_000_000
    );
    writer_cost(&mut conn, rows, now);
    let reader = open_for_reading(&path).expect("the trail opens to read");
    let since_day = Filter {
        since_ms: Some(now - DAY_MS),
        ..Filter::default()
    };
    let searches: Vec<(&str, Filter)> = vec![
        ("newest page, no filter", Filter::default()),
        ("tenant", filter(|f| f.tenant = Some("tenant-7".into()))),
        ("key", filter(|f| f.key = Some("key-123".into()))),
        ("model, last 24 h", {
            let mut f = since_day.clone();
            f.model = Some("gpt-5.3".into());
            f
        }),
        ("account", filter(|f| f.account = Some("acct-11".into()))),
        ("status 500", filter(|f| f.status = Some(500))),
        (
            "request id",
            filter(|f| f.request_id = Some(request_id(rows / 2, start + 15 * DAY_MS))),
        ),
        (
            "action key.create (rare)",
            filter(|f| f.action = Some("key.create".into())),
        ),
        ("key + status 429 + 7 days", {
            let mut f = filter(|f| f.key = Some("key-42".into()));
            f.status = Some(429);
            f.since_ms = Some(now - 7 * DAY_MS);
            f
        }),
    ];
    println!(
        "{:<28} {:>10} {:>10} {:>6}",
        "search (100 rows a page)", "first", "10th page", "rows"
    );
    for (name, filter) in &searches {
        let (first, found) = timed(|| {
            search(&reader, filter, None, 100)
                .expect("search")
                .rows
                .len()
        });
        let (tenth, _) = timed(|| tenth_page(&reader, filter));
        println!(
            "{name:<28} {:>8.2}ms {:>8.2}ms {found:>6}",
            ms(first),
            ms(tenth)
        );
    }
    let (walk, report) = timed(|| verify(&reader).expect("verify"));
    println!(
        "verify: {} rows in {:.1} s, {:?}",
        report.rows,
        walk.as_secs_f64(),
        report.broken
    );
}

/// What the server's writer spends per row on a trail this large: rows appended in batches as a
/// writer gathers them (a few under light load, up to `audit.flush_rows` under heavy load), its
/// thread's CPU time (user and system) per row; and the SHA-256 link alone over the same
/// contents.
fn writer_cost(conn: &mut rusqlite::Connection, filled: i64, now: i64) {
    const ROWS: i64 = 10_000;
    let mut next = filled;
    // As the server's writer appends: one appender, its compression context reused and the
    // block filling indexed as its rows are appended.
    let mut appender = Appender::new().expect("an appender");
    for batch in [16, 200, 1000] {
        let records: Vec<Record> = (next..next + ROWS).map(|n| row(n, now)).collect();
        next += ROWS;
        // The recording threads prepare each row (the request path, in the server).
        let (user, _) = thread_cpu();
        let rows: Vec<Prepared> = records.iter().map(Prepared::of).collect();
        let prepared = thread_cpu().0 - user;
        let (user, system) = thread_cpu();
        for chunk in rows.chunks(batch) {
            appender.append(conn, chunk).expect("a batch is written");
        }
        let (user_after, system_after) = thread_cpu();
        let per_row = |d: Duration| d.as_secs_f64() * 1e6 / ROWS as f64;
        println!(
            "writer: {:.1} µs of CPU a row ({:.1} user, {:.1} system), appended in batches of \
             {batch}; preparing a row {:.1} µs",
            per_row(user_after + system_after - user - system),
            per_row(user_after - user),
            per_row(system_after - system),
            per_row(prepared)
        );
    }
    let contents: Vec<String> = (0..ROWS)
        .map(|n| serde_json::to_string(&row(n, now)).expect("a row serializes"))
        .collect();
    let began = thread_cpu().0;
    let mut previous = [0u8; 32];
    for content in &contents {
        let mut hasher = sha2::Sha256::new();
        hasher.update(previous);
        hasher.update(content.as_bytes());
        previous = hasher.finalize().into();
    }
    let link = (thread_cpu().0 - began).as_secs_f64() * 1e6 / ROWS as f64;
    let bytes = contents.iter().map(String::len).sum::<usize>() / contents.len();
    println!("writer: {link:.2} µs a row of it the SHA-256 link over ~{bytes} bytes");
}

/// A trail of `rows` rows in the schema before segments, then its conversion timed.
fn convert(path: &std::path::Path, rows: i64, start: i64) {
    let conn = rusqlite::Connection::open(path).expect("a file");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .expect("WAL");
    for migration in [
        include_str!("../schema/audit/0001_audit_trail.sql"),
        include_str!("../schema/audit/0002_partial_indexes.sql"),
        include_str!("../schema/audit/0003_block_index.sql"),
    ] {
        conn.execute_batch(migration).expect("the old schema");
    }
    conn.pragma_update(None, "user_version", 3)
        .expect("its version");
    conn.execute_batch("BEGIN").expect("one transaction");
    let mut previous = [0u8; 32];
    for n in 0..rows {
        let record = row(n, start + n * (30 * DAY_MS) / rows);
        let fields = serde_json::to_string(&record).expect("a row serializes");
        let content = format!("{{\"seq\":{},{}", n + 1, &fields[1..]);
        previous = sha2::Sha256::new()
            .chain_update(previous)
            .chain_update(content.as_bytes())
            .finalize()
            .into();
        conn.execute(
            "INSERT INTO audit_rows (seq, at_ms, kind, action, tenant_id, key_id, model,
                 account_id, status, request_id, content, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            rusqlite::params![
                n + 1,
                record.at_ms,
                record.kind.as_str(),
                record.action.as_str(),
                record.tenant_id.as_deref(),
                record.key_id.as_deref(),
                record.model(),
                record.account_id.as_deref(),
                record.status,
                record.request_id.as_deref(),
                content,
                hex::encode(previous),
            ],
        )
        .expect("a row");
    }
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)",
        rusqlite::params![rows, hex::encode(previous)],
    )
    .expect("the head");
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("written");
    drop(conn);
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len()) / 1_000_000;
    println!(
        "a trail of {rows} rows in the schema before segments: {} MB",
        size(path)
    );
    let (opened, conn) = timed_once(|| open_for_writing(path).expect("the trail converts"));
    println!("converted in {:.1} s", opened.as_secs_f64());
    drop(conn.execute_batch("VACUUM"));
    println!("{} MB after VACUUM", size(path));
    let (walk, report) = timed_once(|| verify(&conn).expect("verify"));
    println!(
        "verify: {} rows in {:.1} s, {:?}",
        report.rows,
        walk.as_secs_f64(),
        report.broken
    );
}

fn timed_once<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let began = Instant::now();
    let done = work();
    (began.elapsed(), done)
}

/// This thread's CPU time so far: user, system.
fn thread_cpu() -> (Duration, Duration) {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    (micros(usage.user_time()), micros(usage.system_time()))
}

fn filter(set: impl FnOnce(&mut Filter)) -> Filter {
    let mut f = Filter::default();
    set(&mut f);
    f
}

/// The tenth page, following the cursor from the first.
fn tenth_page(conn: &rusqlite::Connection, filter: &Filter) -> usize {
    let mut cursor: Option<Cursor> = None;
    let mut shown = 0;
    for _ in 0..10 {
        let page = search(conn, filter, cursor, 100).expect("search");
        shown = page.rows.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    shown
}

/// The median of five runs of `work`, and its last result.
fn timed<T>(mut work: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let began = Instant::now();
        last = Some(work());
        times.push(began.elapsed());
    }
    times.sort();
    (times[2], last.expect("ran"))
}

fn ms(took: Duration) -> f64 {
    took.as_secs_f64() * 1000.0
}

/// Row `n`'s request id, as the relay makes them (`edge::context`): a UUIDv7 of its time.
fn request_id(n: i64, at_ms: i64) -> String {
    let random: [u8; 10] = n
        .to_le_bytes()
        .into_iter()
        .chain([0, 0])
        .collect::<Vec<_>>()
        .try_into()
        .expect("ten bytes");
    let id = uuid::Builder::from_unix_timestamp_millis(at_ms as u64, &random).into_uuid();
    format!("req_{}", id.simple())
}

/// Row `n`: mostly requests, one in a thousand an admin act.
fn row(n: i64, at_ms: i64) -> Record {
    if n % 1000 == 999 {
        let mut act = Record::act(ActorKind::AdminToken, "key.create");
        act.at_ms = at_ms;
        act.actor_id = Some("admin-1".into());
        act.target = Some(format_compact!("key-{}", n % 500));
        return act;
    }
    let status = match n % 100 {
        0 => 500,
        1..=3 => 429,
        _ => 200,
    };
    Record {
        at_ms,
        kind: Kind::Request,
        action: "responses.create".into(),
        request_id: Some(request_id(n, at_ms).into()),
        trace_id: Some(format_compact!("{:032x}", n)),
        tenant_id: Some(format_compact!("tenant-{}", n % 50)),
        key_id: Some(format_compact!("key-{}", n % 500)),
        key_name: Some(format_compact!("key name {}", n % 500)),
        client_addr: Some("10.0.0.7".into()),
        client_name: Some("codex_cli_rs".into()),
        client_version: Some("0.50.0".into()),
        endpoint: Some("POST /v1/responses".into()),
        model_requested: Some(format_compact!("gpt-5.{}", n % 10)),
        model_served: Some(format_compact!("gpt-5.{}", n % 10)),
        account_id: Some(format_compact!("acct-{}", n % 20)),
        accounts_tried: vec![format_compact!("acct-{}", n % 20)],
        status: Some(status),
        stream: Some(true),
        stream_outcome: Some("completed".into()),
        input_tokens: Some(1200),
        output_tokens: Some(300),
        duration_ms: Some(2400),
        ..Record::default()
    }
}
