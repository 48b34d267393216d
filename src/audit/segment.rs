//! Segments, the trail's storage: up to [`SEGMENT_ROWS`] consecutive rows of one append in one
//! SQLite row — their canonical JSON lines, one per line, compressed together with zstd, beside
//! their 32-byte hashes and the range of their places and times (`schema/audit/0004_…`). One
//! insert and a few pages a segment rather than a row, its index entries and their pages a row:
//! the writer's cost per row fell by about half (`docs/performance.md`). Every row keeps its
//! own hash, as before: a trail of rows converts without one changing, and `verify` still names
//! the first row that was changed.

use rusqlite::{params, Connection, OptionalExtension};

use super::record::{Record, Row};
use super::AuditError;

/// Rows a segment holds at most.
pub const SEGMENT_ROWS: usize = 64;

/// zstd's fastest level: the writer compresses every row; the readers decompress few.
const LEVEL: i32 = 1;

/// A segment's columns, in the order [`Segment::read`] takes them. The blobs come last: the
/// bounds are read from a segment's first page without its overflow pages.
pub const COLUMNS: &str = "first_seq, last_seq, min_at_ms, max_at_ms, hashes, lines";

/// Compresses segments; one per writer, its context reused.
pub struct Packer(zstd::bulk::Compressor<'static>);

impl Packer {
    pub fn new() -> Result<Packer, AuditError> {
        zstd::bulk::Compressor::new(LEVEL)
            .map(Packer)
            .map_err(|e| AuditError::Damaged(format!("zstd: {e}")))
    }

    /// Writes the segment of rows `first_seq` on: their canonical lines (joined by newlines),
    /// their hashes (32 bytes each) and their times.
    pub fn insert(
        &mut self,
        conn: &Connection,
        first_seq: i64,
        lines: &[u8],
        hashes: &[u8],
        (min_at_ms, max_at_ms): (i64, i64),
    ) -> Result<(), AuditError> {
        let packed = self
            .0
            .compress(lines)
            .map_err(|e| AuditError::Damaged(format!("zstd: {e}")))?;
        let last_seq = first_seq + (hashes.len() / 32) as i64 - 1;
        conn.prepare_cached(
            "INSERT INTO audit_segments (first_seq, last_seq, min_at_ms, max_at_ms, hashes, lines)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            first_seq, last_seq, min_at_ms, max_at_ms, hashes, packed
        ])?;
        Ok(())
    }
}

/// A segment read back: its bounds as stored, its lines decompressed, its hashes.
#[derive(Debug, Clone)]
pub struct Segment {
    pub first_seq: i64,
    pub last_seq: i64,
    pub min_at_ms: i64,
    pub max_at_ms: i64,
    pub hashes: Vec<u8>,
    pub text: String,
    /// Where each line ends in `text` (its newline, or the end).
    ends: Vec<usize>,
}

impl Segment {
    /// The segment in `row`, selected as [`COLUMNS`].
    pub fn read(row: &rusqlite::Row) -> Result<Segment, AuditError> {
        let first_seq = row.get(0)?;
        let damaged = |what: &str| AuditError::Damaged(format!("segment {first_seq}: {what}"));
        let packed = row
            .get_ref(5)?
            .as_blob()
            .map_err(|_| damaged("not a blob"))?;
        let bytes = zstd::stream::decode_all(packed).map_err(|_| damaged("not zstd"))?;
        let text = String::from_utf8(bytes).map_err(|_| damaged("not text"))?;
        let mut ends: Vec<usize> = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
        ends.push(text.len());
        Ok(Segment {
            first_seq,
            last_seq: row.get(1)?,
            min_at_ms: row.get(2)?,
            max_at_ms: row.get(3)?,
            hashes: row.get(4)?,
            text,
            ends,
        })
    }

    /// The segment holding row `seq`, if one does.
    pub fn holding(conn: &Connection, seq: i64) -> Result<Option<Segment>, AuditError> {
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_segments WHERE first_seq <= ?1
             ORDER BY first_seq DESC LIMIT 1"
        ))?;
        let found = statement
            .query_row([seq], |row| Ok(Segment::read(row)))
            .optional()?
            .transpose()?;
        Ok(found.filter(|segment| segment.last_seq >= seq))
    }

    /// Its lines with their places: the first line is row `first_seq`, and so on.
    pub fn lines(&self) -> impl Iterator<Item = (i64, &str)> {
        (self.first_seq..).zip((0..self.ends.len()).filter_map(|index| self.line(index)))
    }

    /// The line at `index`.
    fn line(&self, index: usize) -> Option<&str> {
        let start = match index {
            0 => 0,
            _ => self.ends.get(index - 1)? + 1,
        };
        self.text.get(start..*self.ends.get(index)?)
    }

    /// The hash stored for the line at `index` (none when the hashes are short).
    pub fn hash(&self, index: usize) -> Option<&[u8]> {
        self.hashes.get(index * 32..index * 32 + 32)
    }

    /// The row at place `seq`, as shown: its fields, its place, its hash in hex.
    #[cfg(test)]
    pub fn row(&self, seq: i64) -> Result<Option<Row>, AuditError> {
        self.row_where(seq, |_, _| true)
    }

    /// The row at place `seq` if `keep` keeps its place and line (else it is not parsed).
    pub fn row_where(
        &self,
        seq: i64,
        keep: impl Fn(i64, &str) -> bool,
    ) -> Result<Option<Row>, AuditError> {
        let index = usize::try_from(seq - self.first_seq).unwrap_or(usize::MAX);
        let Some(line) = self.line(index) else {
            return Ok(None);
        };
        if !keep(seq, line) {
            return Ok(None);
        }
        Ok(Some(shown(seq, line, self.hash(index))?))
    }

    /// Every row, in order, as shown.
    pub fn rows(&self) -> impl Iterator<Item = Result<Row, AuditError>> + '_ {
        self.rows_where(|_, _| true)
    }

    /// The rows whose place and line `keep` keeps, in order, as shown: the others are not
    /// parsed (a search reads segments whose times overlap the page's; most of their rows fall
    /// outside it or lack the values asked for).
    pub fn rows_where<'a>(
        &'a self,
        keep: impl Fn(i64, &str) -> bool + 'a,
    ) -> impl Iterator<Item = Result<Row, AuditError>> + 'a {
        self.lines()
            .enumerate()
            .filter(move |(_, (seq, line))| keep(*seq, line))
            .map(|(index, (seq, line))| shown(seq, line, self.hash(index)))
    }
}

fn shown(seq: i64, line: &str, hash: Option<&[u8]>) -> Result<Row, AuditError> {
    Ok(Row {
        seq,
        record: fields(line)?,
        hash: hash.map(hex::encode).unwrap_or_default(),
    })
}

/// A canonical line's fields (its `seq` left out: [`sealed_seq`] reads it).
pub fn fields(line: &str) -> Result<Record, AuditError> {
    Ok(serde_json::from_str(line)?)
}

/// The place a canonical line seals (`{"seq":N,…`), without parsing the rest.
pub fn sealed_seq(line: &str) -> Option<i64> {
    number(line.strip_prefix("{\"seq\":")?).map(|(seq, _)| seq)
}

/// The time a canonical line seals (`{"seq":N,"at_ms":T,…`: a record's first field, always
/// there), without parsing the rest.
pub fn sealed_time(line: &str) -> Option<i64> {
    let (_, rest) = number(line.strip_prefix("{\"seq\":")?)?;
    number(rest.strip_prefix(",\"at_ms\":")?).map(|(at_ms, _)| at_ms)
}

/// The integer `text` starts with, and the rest.
fn number(text: &str) -> Option<(i64, &str)> {
    let end = text.find(|c: char| !c.is_ascii_digit() && c != '-')?;
    Some((text[..end].parse().ok()?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_place_it_seals() {
        assert_eq!(sealed_seq(r#"{"seq":42,"at_ms":1}"#), Some(42));
        assert_eq!(sealed_seq(r#"{"at_ms":1,"seq":42}"#), None);
        assert_eq!(sealed_seq("not a row"), None);
        assert_eq!(
            sealed_time(r#"{"seq":42,"at_ms":-7,"kind":"admin"}"#),
            Some(-7)
        );
        assert_eq!(sealed_time(r#"{"seq":42,"kind":"admin"}"#), None);
    }
}
