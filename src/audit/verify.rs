//! `audit verify`: walks the chain from its anchor (the last pruned row) to its head and names
//! the first row that was edited, deleted, moved or cut off. Reads one row at a time: constant
//! memory over any number of rows.

use std::fmt;

use rusqlite::Connection;

use super::blocks::{self, block_of, first_of, BlockIndex, BLOCK_ROWS};
use super::chain::{anchor, head, link, Link};
use super::record::Record;
use super::segment::{fields, sealed_seq, Segment, COLUMNS};
use super::AuditError;

/// What was found wrong, at which row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The row's content or its hash was changed after it was written (or its segment's
    /// bounds, which searches go by).
    Edited { seq: i64, detail: String },
    /// Rows are missing from the middle of the chain (the first one missing is named).
    Deleted { seq: i64 },
    /// The row holds the content of another place in the chain.
    Moved { seq: i64, holds: i64 },
    /// The chain ends before its recorded head: rows from `seq` to `head` were cut off.
    CutOff { seq: i64, head: i64 },
    /// Rows follow the recorded head: written around the relay.
    Appended { seq: i64 },
    /// The search index of the block from `seq` to `last` says something else than its rows.
    Index { seq: i64, last: i64 },
}

impl Break {
    /// The first row the break concerns.
    pub fn seq(&self) -> i64 {
        match self {
            Break::Edited { seq, .. }
            | Break::Deleted { seq }
            | Break::Moved { seq, .. }
            | Break::CutOff { seq, .. }
            | Break::Appended { seq }
            | Break::Index { seq, .. } => *seq,
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Edited { seq, detail } => write!(f, "row {seq} was edited ({detail})"),
            Break::Deleted { seq } => write!(f, "row {seq} was deleted"),
            Break::Moved { seq, holds } => {
                write!(f, "row {seq} was reordered: it holds row {holds}")
            }
            Break::CutOff { seq, head } => {
                write!(f, "rows {seq} to {head} were cut off the end")
            }
            Break::Appended { seq } => {
                write!(f, "row {seq} was added after the recorded head")
            }
            Break::Index { seq, last } => {
                write!(
                    f,
                    "the search index of rows {seq} to {last} does not match them"
                )
            }
        }
    }
}

/// What a walk found: the rows checked, where the chain starts and ends, the first break.
#[derive(Debug, Clone)]
pub struct Report {
    pub rows: u64,
    pub anchor: Link,
    pub head: Link,
    pub broken: Option<Break>,
}

/// Walks the whole chain.
pub fn verify(conn: &Connection) -> Result<Report, AuditError> {
    let start = anchor(conn)?.unwrap_or_else(Link::genesis);
    let recorded = head(conn)?;
    let mut walk = Walk {
        at: start.clone(),
        rows: 0,
    };
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_segments WHERE last_seq > ?1 ORDER BY first_seq"
    ))?;
    let mut segments = statement.query([start.seq])?;
    let mut index = IndexCheck::from(&start);
    let mut broken = None;
    while let Some(row) = segments.next()? {
        let checked = match Segment::read(row) {
            Ok(segment) => walk.segment(conn, &segment, recorded.seq, &mut index),
            Err(AuditError::Damaged(_)) => Err(edited(row.get(0)?, "its segment is not readable")),
            Err(e) => return Err(e),
        };
        if let Err(found) = checked {
            broken = Some(found);
            break;
        }
    }
    let broken = broken.or_else(|| walk.end(&recorded));
    Ok(Report {
        rows: walk.rows,
        anchor: start,
        head: recorded,
        broken,
    })
}

/// Where a walk has got to: the last row that checked out.
struct Walk {
    at: Link,
    rows: u64,
}

impl Walk {
    /// Checks a segment's rows, then that its bounds are its rows' (a time range edited could
    /// hide rows from searches).
    fn segment(
        &mut self,
        conn: &Connection,
        segment: &Segment,
        head: i64,
        index: &mut IndexCheck,
    ) -> Result<(), Break> {
        let mut times = (i64::MAX, i64::MIN);
        let mut last = segment.first_seq - 1;
        for (i, (seq, line)) in segment.lines().enumerate() {
            let record = self.step(conn, seq, line, segment.hash(i), head)?;
            index.row(conn, seq, &record)?;
            times = (times.0.min(record.at_ms), times.1.max(record.at_ms));
            last = seq;
        }
        if last != segment.last_seq
            || segment.hashes.len() as i64 != 32 * (last - segment.first_seq + 1)
        {
            return Err(edited(
                segment.first_seq,
                "its segment's rows and hashes do not match",
            ));
        }
        if times != (segment.min_at_ms, segment.max_at_ms) {
            return Err(edited(
                segment.first_seq,
                "its segment's time range is not its rows'",
            ));
        }
        Ok(())
    }

    /// Checks the row at place `seq`: its line and stored hash. Its fields when it follows.
    fn step(
        &mut self,
        conn: &Connection,
        seq: i64,
        line: &str,
        hash: Option<&[u8]>,
        head: i64,
    ) -> Result<Record, Break> {
        let expected = self.at.seq + 1;
        if seq > head && expected > head {
            return Err(Break::Appended { seq });
        }
        if seq != expected {
            return Err(Break::Deleted { seq: expected });
        }
        let Some(sealed) = sealed_seq(line) else {
            return Err(edited(seq, "its content is not a row"));
        };
        if sealed != seq {
            return Err(misplaced(conn, seq, sealed));
        }
        let Ok(record) = fields(line) else {
            return Err(edited(seq, "its content is not a row"));
        };
        let linked = link(&self.at.hash, line);
        if hash.map(hex::encode).as_deref() != Some(linked.as_str()) {
            return Err(edited(seq, "its hash does not seal its content"));
        }
        self.at = Link { seq, hash: linked };
        self.rows += 1;
        Ok(record)
    }

    /// The chain has no more rows: it must end at the recorded head.
    fn end(&self, head: &Link) -> Option<Break> {
        if self.at.seq < head.seq {
            return Some(Break::CutOff {
                seq: self.at.seq + 1,
                head: head.seq,
            });
        }
        if self.at.hash != head.hash {
            return Some(edited(self.at.seq, "the recorded head names another hash"));
        }
        None
    }
}

/// Place `seq` holds row `holds`: rows moved, when row `seq` is further on; else deleted, when
/// a later row took its place. Reads the rest of the trail, only once something is wrong.
fn misplaced(conn: &Connection, seq: i64, holds: i64) -> Break {
    let further_on = || -> Result<bool, AuditError> {
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit_segments WHERE last_seq >= ?1 ORDER BY first_seq"
        ))?;
        let mut segments = statement.query([seq])?;
        while let Some(row) = segments.next()? {
            let segment = Segment::read(row)?;
            let mut lines = segment.lines();
            if lines.any(|(at, line)| at != seq && sealed_seq(line) == Some(seq)) {
                return Ok(true);
            }
        }
        Ok(false)
    };
    match holds < seq || further_on().unwrap_or(true) {
        true => Break::Moved { seq, holds },
        false => Break::Deleted { seq },
    }
}

/// Rebuilds each full block's search index from the rows walked and compares it with the one
/// stored, so an index edited to hide rows from searches is found like an edited row.
struct IndexCheck {
    built: BlockIndex,
    /// Whether the walk has every row of the block it is in (not so in the anchor's block,
    /// whose pruned rows it does not see).
    whole: bool,
}

impl IndexCheck {
    fn from(anchor: &Link) -> IndexCheck {
        IndexCheck {
            built: BlockIndex::default(),
            whole: anchor.seq % BLOCK_ROWS == 0,
        }
    }

    /// Takes the next row; at a block's last row, compares the block's index.
    fn row(&mut self, conn: &Connection, seq: i64, record: &Record) -> Result<(), Break> {
        self.built.add_record(seq, record);
        if seq % BLOCK_ROWS != 0 {
            return Ok(());
        }
        let built = std::mem::take(&mut self.built);
        if !std::mem::replace(&mut self.whole, true) {
            return Ok(());
        }
        let block = block_of(seq);
        // A block not indexed yet is not a break: the next append indexes it.
        match blocks::stored(conn, block) {
            Ok(Some(stored)) if blocks::agree(&built, &stored) => Ok(()),
            Ok(None) => Ok(()),
            _ => Err(Break::Index {
                seq: first_of(block),
                last: seq,
            }),
        }
    }
}

fn edited(seq: i64, detail: &str) -> Break {
    Break::Edited {
        seq,
        detail: detail.to_owned(),
    }
}
