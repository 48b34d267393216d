//! Finding rows: the filters `audit search` and `GET /admin/v1/audit` share, newest first, a page
//! at a time behind an opaque cursor; and `audit export`, every row of a time range oldest first,
//! streamed one row at a time. The time, status, action and request-id filters have indexes of
//! their own (`schema/audit/`); tenant, key, model and account are found through the block index
//! (`blocks.rs`). Either way a filtered page reads about as many rows as it returns.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Deserialize;

use super::blocks;
use super::record::Row;
use super::AuditError;

/// What a search keeps; every filter given must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Unix milliseconds, inclusive.
    #[serde(skip)]
    pub since_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    #[serde(skip)]
    pub until_ms: Option<i64>,
    pub tenant: Option<String>,
    pub key: Option<String>,
    pub model: Option<String>,
    pub account: Option<String>,
    pub status: Option<u16>,
    pub action: Option<String>,
    pub request_id: Option<String>,
}

/// A time as a search takes it, in unix milliseconds: RFC 3339 (`2026-12-01T08:00:00Z`), a UTC
/// day (`2026-12-01`), unix seconds, or a time ago (`15m`, `24h`, `7d`) from `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Option<i64> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let unit = match text.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let count: i64 = text.get(..text.len() - 1)?.parse().ok()?;
    Some(now_ms.saturating_sub(count.checked_mul(unit)?))
}

/// Where the next page starts: after the row at (`at_ms`, `seq`), going back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    at_ms: i64,
    seq: i64,
}

impl Cursor {
    /// The cursor as a client holds it: opaque text.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.at_ms, self.seq))
    }

    /// A cursor a client gave back; `None` when it is not one of ours.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at_ms, seq) = text.split_once('.')?;
        Some(Cursor {
            at_ms: at_ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// One page of a search: its rows, newest first, and where the next page starts.
#[derive(Debug)]
pub struct Page {
    pub rows: Vec<Row>,
    pub next: Option<Cursor>,
}

/// The filters as SQL conditions and their parameters.
fn conditions(filter: &Filter) -> (Vec<&'static str>, Vec<Value>) {
    let mut sql = Vec::new();
    let mut params = Vec::new();
    let mut text = |condition, value: &Option<String>| {
        if let Some(value) = value {
            sql.push(condition);
            params.push(Value::Text(value.clone()));
        }
    };
    text("tenant_id = ?", &filter.tenant);
    text("key_id = ?", &filter.key);
    text("model = ?", &filter.model);
    text("account_id = ?", &filter.account);
    text("action = ?", &filter.action);
    text("request_id = ?", &filter.request_id);
    // The status and action indexes leave out the common value (`schema/audit/0002_…`): a
    // search for another one repeats the index's condition so that SQLite uses it.
    if filter.status.is_some_and(|status| status != 200) {
        sql.push("status != 200");
    }
    if filter
        .action
        .as_deref()
        .is_some_and(|action| action != "responses.create")
    {
        sql.push("action != 'responses.create'");
    }
    let numbers = [
        ("status = ?", filter.status.map(i64::from)),
        ("at_ms >= ?", filter.since_ms),
        ("at_ms < ?", filter.until_ms),
    ];
    for (condition, value) in numbers {
        if let Some(value) = value {
            sql.push(condition);
            params.push(Value::Integer(value));
        }
    }
    (sql, params)
}

fn where_clause(conditions: &[&str]) -> String {
    match conditions.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", conditions.join(" AND ")),
    }
}

/// The conditions of `filter` and of the rows after `cursor`, and their parameters.
fn conditions_after(filter: &Filter, cursor: Option<Cursor>) -> (Vec<&'static str>, Vec<Value>) {
    let (mut sql, mut params) = conditions(filter);
    if let Some(cursor) = cursor {
        sql.push("(at_ms, seq) < (?, ?)");
        params.extend([Value::Integer(cursor.at_ms), Value::Integer(cursor.seq)]);
    }
    (sql, params)
}

/// The query for one page of `limit` rows after `cursor` through the per-row indexes, and its
/// parameters.
fn page_query(filter: &Filter, cursor: Option<Cursor>, limit: usize) -> (String, Vec<Value>) {
    let (sql, mut params) = conditions_after(filter, cursor);
    params.push(Value::Integer(limit as i64));
    let query = format!(
        "SELECT seq, at_ms, content, hash FROM audit_rows {} ORDER BY at_ms DESC, seq DESC LIMIT ?",
        where_clause(&sql)
    );
    (query, params)
}

/// The block index's values a filter names (`blocks.rs`): tenant, key, model, account.
fn facets(filter: &Filter) -> Vec<String> {
    [
        ('t', &filter.tenant),
        ('k', &filter.key),
        ('m', &filter.model),
        ('a', &filter.account),
    ]
    .into_iter()
    .filter_map(|(prefix, value)| value.as_deref().map(|value| blocks::facet(prefix, value)))
    .collect()
}

/// A row found, not yet read from its content.
struct Found {
    at_ms: i64,
    seq: i64,
    content: String,
    hash: String,
}

impl Found {
    fn of(row: &rusqlite::Row) -> rusqlite::Result<Found> {
        Ok(Found {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            content: row.get(2)?,
            hash: row.get(3)?,
        })
    }

    fn read(self) -> Result<Row, AuditError> {
        let mut parsed: Row = serde_json::from_str(&self.content)?;
        // The columns are what was searched; the content is what is shown, as sealed.
        parsed.seq = self.seq;
        parsed.hash = self.hash;
        Ok(parsed)
    }
}

/// One page of at most `limit` rows matching `filter`, after `cursor`, newest first.
pub fn search(
    conn: &Connection,
    filter: &Filter,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page, AuditError> {
    // One snapshot: a block indexed meanwhile is neither missed nor read twice.
    let tx = conn.unchecked_transaction()?;
    let facets = facets(filter);
    // One more than asked: whether a next page exists, without counting.
    let wanted = limit + 1;
    let mut found = match facets.is_empty() || filter.request_id.is_some() || !blocks::present(&tx)?
    {
        true => by_row_indexes(&tx, filter, cursor, wanted)?,
        false => by_blocks(&tx, filter, &facets, cursor, wanted)?,
    };
    let next = match found.len() > limit {
        true => {
            found.truncate(limit);
            found.last().map(|last| Cursor {
                at_ms: last.at_ms,
                seq: last.seq,
            })
        }
        false => None,
    };
    let rows = found
        .into_iter()
        .map(Found::read)
        .collect::<Result<_, _>>()?;
    Ok(Page { rows, next })
}

/// The rows of a search the per-row indexes serve: time, status, action, request id.
fn by_row_indexes(
    conn: &Connection,
    filter: &Filter,
    cursor: Option<Cursor>,
    wanted: usize,
) -> Result<Vec<Found>, AuditError> {
    let (query, params) = page_query(filter, cursor, wanted);
    let mut statement = conn.prepare(&query)?;
    let found = statement.query_map(rusqlite::params_from_iter(params), Found::of)?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// The rows of a search by tenant, key, model or account: the rows not indexed yet read one by
/// one, then the blocks holding the first value, latest time first, each narrowed to the rows
/// holding every value. A request row's time is when it began, so blocks overlap in time: a row
/// is certain of its place once it is later than everything the blocks left could hold.
fn by_blocks(
    conn: &Connection,
    filter: &Filter,
    facets: &[String],
    cursor: Option<Cursor>,
    wanted: usize,
) -> Result<Vec<Found>, AuditError> {
    let (conditions, params) = conditions_after(filter, cursor);
    let narrowed = |first: &'static str| {
        let mut all = vec![first];
        all.extend(&conditions);
        all.join(" AND ")
    };
    // The rows after the last full block, at most a block's worth, read one by one. NOT
    // INDEXED: by the row number (seq), never the time index, which a time filter or a cursor
    // would otherwise make SQLite walk over every row of the range.
    let mut tail = conn.prepare(&format!(
        "SELECT seq, at_ms, content, hash FROM audit_rows NOT INDEXED WHERE {}",
        narrowed("seq >= ?")
    ))?;
    let tail_params = std::iter::once(Value::Integer(blocks::unindexed_from(conn)?))
        .chain(params.iter().cloned());
    let mut found = tail
        .query_map(rusqlite::params_from_iter(tail_params), Found::of)?
        .collect::<Result<Vec<_>, _>>()?;
    keep_first(&mut found, wanted);
    let mut one = conn.prepare(&format!(
        "SELECT seq, at_ms, content, hash FROM audit_rows NOT INDEXED WHERE {}",
        narrowed("seq = ?")
    ))?;
    // The blocks holding the first value, latest first: one lookup of the value per block
    // (CROSS JOIN keeps the blocks outside, never a scan of every block's values). A block
    // whose earliest row in search order (its earliest time, its first row) is not before the
    // cursor holds nothing for this page.
    let mut candidates = conn.prepare(
        "SELECT b.block, b.max_at_ms, p.rows FROM audit_blocks b
           CROSS JOIN audit_postings p ON p.block = b.block AND p.facet = ?1
         WHERE b.max_at_ms >= ?2 AND b.min_at_ms < ?3
           AND (b.min_at_ms, b.block * ?6 + 1) <= (?4, ?5)
         ORDER BY b.max_at_ms DESC, b.block DESC",
    )?;
    let (before_ms, before_seq) = cursor.map_or((i64::MAX, i64::MAX), |c| (c.at_ms, c.seq));
    let bounds = rusqlite::params![
        facets[0],
        filter.since_ms.unwrap_or(i64::MIN),
        filter.until_ms.unwrap_or(i64::MAX),
        before_ms,
        before_seq,
        blocks::BLOCK_ROWS,
    ];
    let mut blocks_found = candidates.query(bounds)?;
    while let Some(candidate) = blocks_found.next()? {
        let (block, latest): (i64, i64) = (candidate.get(0)?, candidate.get(1)?);
        // Blocks come latest first, and of two equally late the newer first: no row of this
        // block or of one after it comes before (latest, this block's last row).
        let bound = (latest, blocks::last_of(block));
        if found.len() == wanted
            && found
                .last()
                .is_some_and(|last| (last.at_ms, last.seq) > bound)
        {
            break;
        }
        let mut seqs = blocks::seqs(block, &candidate.get::<_, Vec<u8>>(2)?);
        for other in &facets[1..] {
            let theirs = blocks::posting(conn, block, other)?;
            seqs.retain(|seq| theirs.binary_search(seq).is_ok());
        }
        for seq in seqs {
            let params = std::iter::once(Value::Integer(seq)).chain(params.iter().cloned());
            let mut row = one.query(rusqlite::params_from_iter(params))?;
            if let Some(row) = row.next()? {
                found.push(Found::of(row)?);
            }
        }
        keep_first(&mut found, wanted);
    }
    Ok(found)
}

/// Keeps the first `wanted` rows in search order (newest first): rows found later can only
/// push the others further down.
fn keep_first(found: &mut Vec<Found>, wanted: usize) {
    found.sort_unstable_by_key(|row| std::cmp::Reverse((row.at_ms, row.seq)));
    found.truncate(wanted);
}

/// Every row matching `filter`, oldest first, handed to `each` one at a time.
pub fn export(
    conn: &Connection,
    filter: &Filter,
    mut each: impl FnMut(&Row) -> std::io::Result<()>,
) -> Result<u64, AuditError> {
    let (sql, params) = conditions(filter);
    let query = format!(
        "SELECT seq, at_ms, content, hash FROM audit_rows {} ORDER BY seq",
        where_clause(&sql)
    );
    let mut statement = conn.prepare(&query)?;
    let mut found = statement.query(rusqlite::params_from_iter(params))?;
    let mut count = 0;
    while let Some(row) = found.next()? {
        each(&Found::of(row)?.read()?).map_err(AuditError::Output)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_form_a_search_takes() {
        let now = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        assert_eq!(parse_time("2025-12-01T00:00:00Z", 0), Some(now));
        assert_eq!(parse_time("2025-12-01", 0), Some(now));
        assert_eq!(parse_time("1764547200", 0), Some(now));
        assert_eq!(parse_time("2h", now), Some(now - 7_200_000));
        assert_eq!(parse_time("7d", now), Some(now - 7 * 86_400_000));
        assert_eq!(parse_time("yesterday", now), None);
    }

    /// A trail of requests answered 200 and 500, and one administrative act.
    fn trail() -> (tempfile::TempDir, Connection) {
        use crate::audit::{append, open_for_writing, Kind, Record};
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_for_writing(&dir.path().join("audit.db")).unwrap();
        let request = |at_ms, status| Record {
            at_ms,
            kind: Kind::Request,
            action: "responses.create".into(),
            status: Some(status),
            ..Record::default()
        };
        let mut records: Vec<Record> = (0..40).map(|i| request(i, 200)).collect();
        records.extend((40..43).map(|i| request(i, 500)));
        records.push(Record {
            at_ms: 50,
            ..Record::act(crate::audit::ActorKind::Cli, "key.create")
        });
        append(&mut conn, &records).unwrap();
        (dir, conn)
    }

    fn plan(conn: &Connection, filter: &Filter) -> String {
        let (query, params) = page_query(filter, None, 10);
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .unwrap();
        let details = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(3)
            })
            .unwrap();
        details.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn a_status_or_action_other_than_the_common_one_is_found_through_its_partial_index() {
        let (_dir, conn) = trail();
        let by_status = |status| Filter {
            status: Some(status),
            ..Filter::default()
        };
        let by_action = |action: &str| Filter {
            action: Some(action.to_owned()),
            ..Filter::default()
        };
        assert!(plan(&conn, &by_status(500)).contains("audit_rows_status"));
        assert!(plan(&conn, &by_action("key.create")).contains("audit_rows_action"));
        let found = |filter: &Filter| search(&conn, filter, None, 100).unwrap().rows.len();
        assert_eq!(found(&by_status(500)), 3);
        assert_eq!(found(&by_status(200)), 40);
        assert_eq!(found(&by_status(404)), 0);
        assert_eq!(found(&by_action("key.create")), 1);
        assert_eq!(found(&by_action("responses.create")), 43);
    }

    #[test]
    fn a_cursor_reads_back_and_foreign_text_is_no_cursor() {
        let cursor = Cursor {
            at_ms: 1_700_000_000_000,
            seq: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1.x")), None);
    }
}
