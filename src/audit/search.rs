//! Finding rows: the filters `audit search` and `GET /admin/v1/audit` share, newest first, a page
//! at a time behind an opaque cursor; and `audit export`, every row of a time range oldest first,
//! streamed one segment at a time. Tenant, key, model, account and the rare statuses and actions
//! are found through the block index (`blocks.rs`); a search by time alone, or by the common
//! status or action, reads the segments latest first (`segment.rs`); a request id the relay made
//! holds its time (a UUIDv7), so it is looked for among the segments of that moment. Either way a
//! page reads about as many rows as it returns, and a few segments more.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rusqlite::Connection;
use serde::Deserialize;

use super::blocks::{self, common_action, common_status};
use super::record::Row;
use super::segment::{self, Segment, COLUMNS, SEGMENT_ROWS};
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

/// What a row must be to be found: the filter, the cursor, and the times they allow.
struct Wanted<'a> {
    filter: &'a Filter,
    cursor: Option<Cursor>,
    /// Unix milliseconds, from (inclusive) and until (exclusive): the filter's, narrowed to
    /// the moment a relay-made request id names.
    since_ms: i64,
    until_ms: i64,
    /// Text a matching row's line holds: each value asked for, as JSON writes it. A line
    /// without one of them is passed over without being parsed; one with all of them is then
    /// parsed and matched field by field.
    needles: Vec<memchr::memmem::Finder<'static>>,
}

/// How far a request row's time may be from its id's: the id is made when the request arrives,
/// and the row takes the time it began; a minute covers a clock that was set meanwhile.
const REQUEST_ID_SLACK_MS: i64 = 60_000;

impl<'a> Wanted<'a> {
    fn new(filter: &'a Filter, cursor: Option<Cursor>) -> Wanted<'a> {
        let (mut since_ms, mut until_ms) = (
            filter.since_ms.unwrap_or(i64::MIN),
            filter.until_ms.unwrap_or(i64::MAX),
        );
        if let Some(at) = filter.request_id.as_deref().and_then(request_id_time) {
            since_ms = since_ms.max(at - REQUEST_ID_SLACK_MS);
            until_ms = until_ms.min(at + REQUEST_ID_SLACK_MS);
        }
        let texts = [
            &filter.tenant,
            &filter.key,
            &filter.model,
            &filter.account,
            &filter.action,
            &filter.request_id,
        ];
        let needles = texts
            .into_iter()
            .flatten()
            .filter_map(|value| serde_json::to_string(value).ok())
            .map(|quoted| memchr::memmem::Finder::new(quoted.as_bytes()).into_owned())
            .collect();
        Wanted {
            filter,
            cursor,
            since_ms,
            until_ms,
            needles,
        }
    }

    /// Whether the row at place `seq` with canonical `line` may match: its time (read without
    /// parsing the line) in range and after the cursor, every value asked for in its text.
    fn admits(&self, seq: i64, line: &str) -> bool {
        segment::sealed_time(line).is_none_or(|at_ms| self.in_range(seq, at_ms))
            && self
                .needles
                .iter()
                .all(|needle| needle.find(line.as_bytes()).is_some())
    }

    /// Whether a row at place `seq` and time `at_ms` is in the time range and after the cursor.
    fn in_range(&self, seq: i64, at_ms: i64) -> bool {
        (self.since_ms..self.until_ms).contains(&at_ms)
            && self.cursor.is_none_or(|c| (at_ms, seq) < (c.at_ms, c.seq))
    }

    /// Whether `row` matches every filter and comes after the cursor.
    fn matches(&self, row: &Row) -> bool {
        let (f, r) = (self.filter, &row.record);
        let text = |wanted: &Option<String>, actual: Option<&str>| {
            wanted
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == actual)
        };
        self.in_range(row.seq, r.at_ms)
            && text(&f.tenant, r.tenant_id.as_deref())
            && text(&f.key, r.key_id.as_deref())
            && text(&f.model, r.model())
            && text(&f.account, r.account_id.as_deref())
            && text(&f.action, Some(r.action.as_str()))
            && text(&f.request_id, r.request_id.as_deref())
            && f.status.is_none_or(|status| r.status == Some(status))
    }

    /// The rows of `segment` that match.
    fn rows_of(&self, segment: &Segment, into: &mut Vec<Row>) -> Result<(), AuditError> {
        for row in segment.rows_where(|seq, line| self.admits(seq, line)) {
            let row = row?;
            if self.matches(&row) {
                into.push(row);
            }
        }
        Ok(())
    }
}

/// The time a request id the relay made holds: `req_` and a UUIDv7, whose first 48 bits are
/// unix milliseconds. `None` for an id a client chose.
fn request_id_time(id: &str) -> Option<i64> {
    let uuid = uuid::Uuid::try_parse(id.strip_prefix("req_")?).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
    i64::try_from(seconds)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// The block index's values a filter names (`blocks.rs`): tenant, key, model, account, and a
/// status or action other than the common one.
fn facets(filter: &Filter) -> Vec<String> {
    let status = filter
        .status
        .filter(|status| !common_status(*status))
        .map(|status| status.to_string());
    let action = filter
        .action
        .clone()
        .filter(|action| !common_action(action));
    [
        ('t', filter.tenant.as_ref()),
        ('k', filter.key.as_ref()),
        ('m', filter.model.as_ref()),
        ('a', filter.account.as_ref()),
        ('s', status.as_ref()),
        ('x', action.as_ref()),
    ]
    .into_iter()
    .filter_map(|(prefix, value)| value.map(|value| blocks::facet(prefix, value)))
    .collect()
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
    let wanted = Wanted::new(filter, cursor);
    let facets = facets(filter);
    // One more than asked: whether a next page exists, without counting.
    let count = limit + 1;
    let mut found = match facets.is_empty() {
        true => by_time(&tx, &wanted, count)?,
        false => by_blocks(&tx, &wanted, &facets, count)?,
    };
    let next = match found.len() > limit {
        true => {
            found.truncate(limit);
            found.last().map(|last| Cursor {
                at_ms: last.record.at_ms,
                seq: last.seq,
            })
        }
        false => None,
    };
    Ok(Page { rows: found, next })
}

/// Whether no row of what is left to read can come before the last of `found`, which holds
/// `count` rows: what is left holds nothing later than `bound` in search order.
fn complete(found: &[Row], count: usize, bound: (i64, i64)) -> bool {
    found.len() == count
        && found
            .last()
            .is_some_and(|last| (last.record.at_ms, last.seq) > bound)
}

/// The rows of a search by time alone (or by the common status or action, or a request id):
/// the segments of the time range, latest first, each read whole. A request row's time is when
/// it began, so segments overlap in time: a row is certain of its place once it is later than
/// everything the segments left could hold.
fn by_time(conn: &Connection, wanted: &Wanted, count: usize) -> Result<Vec<Row>, AuditError> {
    let mut candidates = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_segments
         WHERE max_at_ms >= ?1 AND min_at_ms < ?2 AND (min_at_ms, first_seq) <= (?3, ?4)
         ORDER BY max_at_ms DESC, first_seq DESC"
    ))?;
    let (before_ms, before_seq) = before(wanted.cursor);
    let bounds = rusqlite::params![wanted.since_ms, wanted.until_ms, before_ms, before_seq];
    let mut segments = candidates.query(bounds)?;
    let mut found = Vec::new();
    while let Some(row) = segments.next()? {
        let bound = (row.get(3)?, row.get(1)?);
        if complete(&found, count, bound) {
            break;
        }
        wanted.rows_of(&Segment::read(row)?, &mut found)?;
        keep_first(&mut found, count);
    }
    Ok(found)
}

/// Where a cursor leaves the search: rows before (at_ms, seq), or all of them.
fn before(cursor: Option<Cursor>) -> (i64, i64) {
    cursor.map_or((i64::MAX, i64::MAX), |c| (c.at_ms, c.seq))
}

/// The rows of a search through the block index: the rows not indexed yet read one segment
/// at a time, then the blocks holding the first value, latest time first, each narrowed to the
/// rows holding every value, read from their segments.
fn by_blocks(
    conn: &Connection,
    wanted: &Wanted,
    facets: &[String],
    count: usize,
) -> Result<Vec<Row>, AuditError> {
    let mut found = Vec::new();
    let mut tail = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_segments WHERE first_seq >= ?1 AND last_seq >= ?2
         ORDER BY first_seq"
    ))?;
    let unindexed = blocks::unindexed_from(conn)?;
    // By `first_seq`, the table's key (a segment holds at most SEGMENT_ROWS rows).
    let from = unindexed - SEGMENT_ROWS as i64 + 1;
    let mut segments = tail.query([from, unindexed])?;
    while let Some(row) = segments.next()? {
        wanted.rows_of(&Segment::read(row)?, &mut found)?;
    }
    // The first segment may begin in the last block indexed: those rows the index finds.
    found.retain(|row| row.seq >= unindexed);
    keep_first(&mut found, count);
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
    let (before_ms, before_seq) = before(wanted.cursor);
    let bounds = rusqlite::params![
        facets[0],
        wanted.since_ms,
        wanted.until_ms,
        before_ms,
        before_seq,
        blocks::BLOCK_ROWS,
    ];
    let mut blocks_found = candidates.query(bounds)?;
    let mut segment: Option<Segment> = None;
    while let Some(candidate) = blocks_found.next()? {
        let (block, latest): (i64, i64) = (candidate.get(0)?, candidate.get(1)?);
        // Blocks come latest first, and of two equally late the newer first: no row of this
        // block or of one after it comes before (latest, this block's last row).
        if complete(&found, count, (latest, blocks::last_of(block))) {
            break;
        }
        let mut seqs = blocks::seqs(block, &candidate.get::<_, Vec<u8>>(2)?);
        for other in &facets[1..] {
            let theirs = blocks::posting(conn, block, other)?;
            seqs.retain(|seq| theirs.binary_search(seq).is_ok());
        }
        for seq in seqs {
            if !segment
                .as_ref()
                .is_some_and(|s| (s.first_seq..=s.last_seq).contains(&seq))
            {
                segment = Segment::holding(conn, seq)?;
            }
            let row = match &segment {
                Some(segment) => segment.row_where(seq, |seq, line| wanted.admits(seq, line))?,
                None => None,
            };
            if let Some(row) = row.filter(|row| wanted.matches(row)) {
                found.push(row);
            }
        }
        keep_first(&mut found, count);
    }
    Ok(found)
}

/// Keeps the first `count` rows in search order (newest first): rows found later can only
/// push the others further down.
fn keep_first(found: &mut Vec<Row>, count: usize) {
    found.sort_unstable_by_key(|row| std::cmp::Reverse((row.record.at_ms, row.seq)));
    found.truncate(count);
}

/// Every row matching `filter`, oldest first, handed to `each` one at a time.
pub fn export(
    conn: &Connection,
    filter: &Filter,
    mut each: impl FnMut(&Row) -> std::io::Result<()>,
) -> Result<u64, AuditError> {
    let tx = conn.unchecked_transaction()?;
    let wanted = Wanted::new(filter, None);
    let mut statement = tx.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_segments WHERE max_at_ms >= ?1 AND min_at_ms < ?2
         ORDER BY first_seq"
    ))?;
    let mut segments = statement.query([wanted.since_ms, wanted.until_ms])?;
    let mut count = 0;
    let mut rows = Vec::new();
    while let Some(row) = segments.next()? {
        rows.clear();
        wanted.rows_of(&Segment::read(row)?, &mut rows)?;
        for row in &rows {
            each(row).map_err(AuditError::Output)?;
            count += 1;
        }
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
