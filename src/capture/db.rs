//! The capture file: `capture.db` beside the store (0600, WAL), its own SQLite file so that the
//! credential store never contends with it. It holds the rules and the sealed records
//! (`records.rs`). Every method blocks: the server calls them through `web::block` or from the
//! writer's thread, never on an arbiter.

use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::rules::{ActiveRule, Subject};
use super::CaptureError;

/// The capture file's name, in the store's folder.
pub const FILE_NAME: &str = crate::store::files::CAPTURE_FILE;

const MIGRATIONS: &[&str] = &[include_str!(
    "../../schema/capture/0001_rules_and_records.sql"
)];

/// Where the capture file of the store at `store_path` is.
pub fn path_beside(store_path: &Path) -> PathBuf {
    match store_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join(FILE_NAME),
        None => PathBuf::from(FILE_NAME),
    }
}

/// A cheap, cloneable handle on the capture file.
#[derive(Clone)]
pub struct CaptureDb {
    pub(super) pool: r2d2::Pool<SqliteConnectionManager>,
}

/// A capture as listed: never any content.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleRow {
    pub id: String,
    #[serde(skip)]
    pub subject: Subject,
    pub reason: Option<String>,
    pub started_by: String,
    pub started_at: i64,
    pub ends_at: i64,
    pub stopped_at: Option<i64>,
    pub stopped_by: Option<String>,
    /// Calls captured under it (still kept).
    pub records: i64,
}

impl RuleRow {
    /// `active`, `stopped` or `ended` at `now`.
    pub fn status(&self, now: i64) -> &'static str {
        match (self.stopped_at, now < self.ends_at) {
            (Some(_), _) => "stopped",
            (None, true) => "active",
            (None, false) => "ended",
        }
    }
}

/// A capture to start.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub subject: Subject,
    pub reason: Option<String>,
    pub started_by: String,
    pub started_at: i64,
    pub ends_at: i64,
}

const RULE_COLUMNS: &str = "r.id, r.scope, r.subject, r.reason, r.started_by, r.started_at, \
     r.ends_at, r.stopped_at, r.stopped_by, \
     (SELECT count(*) FROM capture_records c WHERE c.rule_id = r.id)";

impl CaptureDb {
    /// Opens (creating when missing) the capture file at `path`, private to the relay's user.
    pub fn open(path: &Path) -> Result<CaptureDb, CaptureError> {
        create_private(path)?;
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "foreign_keys", true)
        });
        let pool = r2d2::Pool::builder()
            .max_size(2)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        let mut conn = pool.get()?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut conn)?;
        Ok(CaptureDb { pool })
    }

    /// Records a new capture; returns its id.
    pub fn insert_rule(&self, rule: &NewRule) -> Result<String, CaptureError> {
        let id = format!("cap_{}", uuid::Uuid::new_v4().simple());
        self.pool.get()?.execute(
            "INSERT INTO capture_rules (id, scope, subject, reason, started_by, started_at, ends_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                rule.subject.scope(),
                rule.subject.id(),
                rule.reason,
                rule.started_by,
                rule.started_at,
                rule.ends_at
            ],
        )?;
        Ok(id)
    }

    /// Stops a capture that still runs at `now`.
    pub fn stop_rule(&self, id: &str, by: &str, now: i64) -> Result<RuleRow, CaptureError> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rule = rule_in(&tx, id)?;
        if rule.status(now) != "active" {
            return Err(CaptureError::Conflict(format!(
                "Capture {id} is already {}.",
                rule.status(now)
            )));
        }
        tx.execute(
            "UPDATE capture_rules SET stopped_at = ?2, stopped_by = ?3 WHERE id = ?1",
            params![id, now, by],
        )?;
        let stopped = rule_in(&tx, id)?;
        tx.commit()?;
        Ok(stopped)
    }

    /// Every capture, newest first.
    pub fn list_rules(&self) -> Result<Vec<RuleRow>, CaptureError> {
        let conn = self.pool.get()?;
        let mut query = conn.prepare(&format!(
            "SELECT {RULE_COLUMNS} FROM capture_rules r ORDER BY r.started_at DESC, r.id"
        ))?;
        let rows = query.query_map([], rule_row)?;
        rows.filter_map(Result::transpose)
            .collect::<Result<_, _>>()
            .map_err(CaptureError::from)
    }

    pub fn get_rule(&self, id: &str) -> Result<RuleRow, CaptureError> {
        let conn = self.pool.get()?;
        rule_in(&conn, id)
    }

    /// The captures running at `now`, for the request path's set.
    pub fn active_rules(&self, now: i64) -> Result<Vec<ActiveRule>, CaptureError> {
        let conn = self.pool.get()?;
        let mut query = conn.prepare(
            "SELECT id, scope, subject, ends_at FROM capture_rules
             WHERE stopped_at IS NULL AND ends_at > ?1",
        )?;
        let rows = query.query_map([now], |row| {
            let subject = Subject::from_row(&row.get::<_, String>(1)?, row.get(2)?);
            Ok(subject.map(|subject| ActiveRule {
                id: row.get::<_, String>(0).map(Into::into).unwrap_or_default(),
                subject,
                ends_at: row.get(3).unwrap_or(0),
            }))
        })?;
        rows.filter_map(Result::transpose)
            .collect::<Result<_, _>>()
            .map_err(CaptureError::from)
    }
}

fn rule_in(conn: &rusqlite::Connection, id: &str) -> Result<RuleRow, CaptureError> {
    conn.query_row(
        &format!("SELECT {RULE_COLUMNS} FROM capture_rules r WHERE r.id = ?1"),
        [id],
        rule_row,
    )
    .optional()?
    .flatten()
    .ok_or_else(|| CaptureError::NotFound(format!("No capture with id {id}.")))
}

/// A rule's row; `None` for a scope this build does not know.
fn rule_row(row: &Row) -> rusqlite::Result<Option<RuleRow>> {
    let Some(subject) = Subject::from_row(&row.get::<_, String>(1)?, row.get(2)?) else {
        return Ok(None);
    };
    Ok(Some(RuleRow {
        id: row.get(0)?,
        subject,
        reason: row.get(3)?,
        started_by: row.get(4)?,
        started_at: row.get(5)?,
        ends_at: row.get(6)?,
        stopped_at: row.get(7)?,
        stopped_by: row.get(8)?,
        records: row.get(9)?,
    }))
}

fn migrate(conn: &mut rusqlite::Connection) -> Result<(), CaptureError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(CaptureError::Unusable(format!(
            "the capture file was written by a newer codex-relay (schema {version}, this build knows {known})"
        )));
    }
    for (at, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", at as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// Creates the file 0600 before SQLite opens it: SQLite gives its `-wal` and `-shm` the file's
/// mode, so they are private too.
fn create_private(path: &Path) -> Result<(), CaptureError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|e| CaptureError::Unusable(format!("cannot open {}: {e}", path.display())))
}
