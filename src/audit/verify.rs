//! `audit verify`: walks the chain from its anchor (the last pruned row) to its head and names
//! the first row that was edited, deleted, moved or cut off. Reads one row at a time: constant
//! memory over any number of rows.

use std::fmt;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::blocks::{self, block_of, first_of, BlockIndex, BLOCK_ROWS};
use super::chain::{anchor, head, link, Link};
use super::record::{Record, Row};
use super::AuditError;

/// What was found wrong, at which row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The row's content or a column was changed after it was written.
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
    let mut statement = conn.prepare(
        "SELECT seq, at_ms, kind, action, tenant_id, key_id, model, account_id, status,
                request_id, capture_id, content, hash
         FROM audit_rows WHERE seq > ?1 ORDER BY seq",
    )?;
    let mut rows = statement.query([start.seq])?;
    let mut index = match blocks::present(conn)? {
        true => Some(IndexCheck::from(&start)),
        false => None,
    };
    let mut broken = None;
    while let Some(row) = rows.next()? {
        let columns: Vec<Value> = (0..13).map(|i| row.get(i)).collect::<Result<_, _>>()?;
        let checked = walk
            .step(&columns, recorded.seq)
            .and_then(|sealed| match &mut index {
                Some(index) => index.row(conn, sealed.seq, &sealed.record),
                None => Ok(()),
            });
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
    /// Checks the next row (its columns as read); its sealed content when it follows.
    fn step(&mut self, columns: &[Value], head: i64) -> Result<Row, Break> {
        let seq = integer(&columns[0]).unwrap_or_default();
        let expected = self.at.seq + 1;
        if seq > head && expected > head {
            return Err(Break::Appended { seq });
        }
        if seq != expected {
            return Err(Break::Deleted { seq: expected });
        }
        let (content, hash) = (text(&columns[11]), text(&columns[12]));
        let sealed: Option<Row> = serde_json::from_str(&content).ok();
        let Some(sealed) = sealed else {
            return Err(edited(seq, "its content is not a row"));
        };
        if sealed.seq != seq {
            return Err(Break::Moved {
                seq,
                holds: sealed.seq,
            });
        }
        if link(&self.at.hash, &content) != hash {
            return Err(edited(seq, "its hash does not seal its content"));
        }
        if let Some(column) = disagreeing_column(columns, &sealed) {
            return Err(edited(
                seq,
                &format!("column {column} differs from its content"),
            ));
        }
        self.at = Link { seq, hash };
        self.rows += 1;
        Ok(sealed)
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

/// The first searchable column that says something else than the sealed content.
fn disagreeing_column(columns: &[Value], sealed: &Row) -> Option<&'static str> {
    let record = &sealed.record;
    let texts: [(&'static str, usize, Option<&str>); 8] = [
        ("kind", 2, Some(record.kind.as_str())),
        ("action", 3, Some(record.action.as_str())),
        ("tenant_id", 4, record.tenant_id.as_deref()),
        ("key_id", 5, record.key_id.as_deref()),
        ("model", 6, record.model()),
        ("account_id", 7, record.account_id.as_deref()),
        ("request_id", 9, record.request_id.as_deref()),
        ("capture_id", 10, record.capture_id.as_deref()),
    ];
    if integer(&columns[1]) != Some(record.at_ms) {
        return Some("at_ms");
    }
    if integer(&columns[8]) != record.status.map(i64::from) {
        return Some("status");
    }
    texts
        .into_iter()
        .find(|(_, index, want)| optional_text(&columns[*index]) != *want)
        .map(|(name, _, _)| name)
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

fn optional_text(value: &Value) -> Option<&str> {
    match value {
        Value::Text(text) => Some(text),
        _ => None,
    }
}

fn text(value: &Value) -> String {
    optional_text(value).unwrap_or_default().to_owned()
}
