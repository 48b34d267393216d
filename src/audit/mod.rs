//! The audit trail: who called which model through which endpoint, and who changed what — one
//! row per data-plane request and per administrative act, metadata only, in a hash chain of its
//! own SQLite file (`docs/audit.md`).
//!
//! | file           | owns                                                             |
//! |----------------|------------------------------------------------------------------|
//! | `record.rs`    | what a row says                                                  |
//! | `canonical.rs` | a row's canonical content, the bytes its hash seals              |
//! | `prepared.rs`  | a row's values packed by the thread recording it, for the writer |
//! | `file.rs`      | the audit file: where, its modes, WAL, its schema                |
//! | `chain.rs`     | appending under the chain's head, the hash of a link             |
//! | `segment.rs`   | the storage: rows in compressed segments beside their hashes     |
//! | `blocks.rs`    | the search index of tenant, key, model, account, …, in bulk      |
//! | `verify.rs`    | walking the chain from its anchor, naming the first break        |
//! | `search.rs`    | filters, pages behind a cursor, the export                       |
//! | `retention.rs` | pruning old rows behind an anchor                                |
//! | `writer.rs`    | the one writer thread and its batches                            |
//! | `metrics.rs`   | rows written, lost, failed writes, pending                       |
//!
//! The request path holds an [`Audit`] and only tries to queue a row ([`Audit::record`]): no
//! wait, no lock, no I/O. The CLI, a process of its own, appends its acts directly
//! ([`append_now`]); both serialize on the file's write lock.

mod blocks;
mod canonical;
mod chain;
mod file;
pub mod metrics;
mod prepared;
pub mod record;
mod retention;
pub mod search;
mod segment;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use slog::{error, info, Logger};

pub use self::chain::{append, Appender, Link, GENESIS};
pub use self::file::{backup, open_for_reading, open_for_writing, path_of};
pub use self::metrics::AuditMetrics;
pub use self::prepared::Prepared;
pub use self::record::{client_of, now_ms, ActorKind, Kind, Record, Row};
pub use self::retention::prune;
use self::writer::{Message, Writer};
use crate::settings::{AuditOnFailure, Settings};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit trail {path}: {cause}")]
    Open { path: PathBuf, cause: String },
    #[error("the audit trail's database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("an audit row could not be encoded or read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("the audit trail's storage is damaged: {0}")]
    Damaged(String),
}

/// The request path's handle on the audit trail; cheap to clone.
#[derive(Clone)]
pub struct Audit(Arc<Shared>);

pub(crate) struct Shared {
    /// `None` when `audit.enabled` is off.
    queue: Option<SyncSender<Message>>,
    on_failure: AuditOnFailure,
    /// False while rows cannot be written: the file does not open, a write failed, the queue
    /// overflowed. `refuse` answers 503 while it is.
    healthy: AtomicBool,
    /// In a run of lost rows (logged once at its start, once at its end).
    losing: AtomicBool,
    /// The writer's thread, woken when `flush_rows` rows are pending or a flush is asked for.
    writer: OnceLock<std::thread::Thread>,
    /// `audit.flush_rows`.
    flush_rows: i64,
    metrics: AuditMetrics,
    log: Logger,
}

impl Audit {
    /// Opens the audit file the settings name and starts its writer (nothing when
    /// `audit.enabled` is off). A file that does not open is logged, counted as lost rows, and
    /// tried again on every flush interval; with `refuse` the data plane answers 503 meanwhile.
    pub fn start(settings: &Settings, metrics: AuditMetrics, log: &Logger) -> Audit {
        let audit = &settings.audit;
        let shared = |queue| Shared {
            queue,
            on_failure: audit.on_failure,
            healthy: AtomicBool::new(true),
            losing: AtomicBool::new(false),
            writer: OnceLock::new(),
            flush_rows: i64::try_from(audit.flush_rows).unwrap_or(i64::MAX),
            metrics: metrics.clone(),
            log: log.clone(),
        };
        if !audit.enabled {
            return Audit(Arc::new(shared(None)));
        }
        let path = path_of(settings);
        let (sender, queue) = sync_channel(audit.queue_rows);
        let shared = Arc::new(shared(Some(sender)));
        let conn = match open_for_writing(&path) {
            Ok(conn) => Some(conn),
            Err(e) => {
                shared.failed(&e.to_string());
                None
            }
        };
        let writer = Writer {
            path,
            conn,
            queue,
            shared: Arc::clone(&shared),
            interval: Duration::from_millis(audit.flush_interval_ms),
            flush_rows: audit.flush_rows,
            retention_days: audit.retention_days,
            appender: None,
        };
        let started = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run());
        match started {
            Ok(handle) => {
                let _ = shared.writer.set(handle.thread().clone());
            }
            Err(e) => shared.failed(&format!("the writer thread did not start: {e}")),
        }
        Audit(shared)
    }

    /// No audit trail (tests of other parts, tools).
    pub fn off(log: &Logger) -> Audit {
        Audit(Arc::new(Shared {
            queue: None,
            on_failure: AuditOnFailure::Continue,
            healthy: AtomicBool::new(true),
            losing: AtomicBool::new(false),
            writer: OnceLock::new(),
            flush_rows: i64::MAX,
            metrics: AuditMetrics::default(),
            log: log.clone(),
        }))
    }

    /// Whether rows are recorded at all (`audit.enabled`).
    pub fn enabled(&self) -> bool {
        self.0.queue.is_some()
    }

    /// Queues a row for the writer, never waiting: a full queue loses the row (counted, logged
    /// once per run of losses).
    pub fn record(&self, record: Record) {
        let Some(queue) = &self.0.queue else {
            return;
        };
        // Packed here, on the recording thread: the record's strings are freed where they were
        // made, and the writer gets one buffer (`prepared.rs`).
        let row = Prepared::of(&record);
        drop(record);
        match queue.try_send(Message::Row(row)) {
            Ok(()) => {
                if self.0.metrics.pending.inc() + 1 >= self.0.flush_rows {
                    self.0.wake_writer();
                }
            }
            Err(TrySendError::Full(_)) => {
                self.0.metrics.lost.inc();
                self.0
                    .failed("the queue of audit rows is full (audit.queue_rows)");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.0.metrics.lost.inc();
                self.0.failed("the audit writer has stopped");
            }
        }
    }

    /// True when `audit.on_failure = "refuse"` and rows cannot be written now: the data plane
    /// answers 503 instead of serving unaudited.
    pub fn refuses(&self) -> bool {
        self.0.on_failure == AuditOnFailure::Refuse
            && self.0.queue.is_some()
            && !self.0.healthy.load(Ordering::Relaxed)
    }

    /// Waits, at most `timeout`, until every row queued so far is written. Blocks: call it off
    /// the arbiters (a stopping relay does, through `web::block`). False when it timed out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(queue) = &self.0.queue else {
            return true;
        };
        let (done, wait) = sync_channel(1);
        if queue.send(Message::Flush(done)).is_err() {
            return false;
        }
        self.0.wake_writer();
        wait.recv_timeout(timeout).is_ok()
    }

    /// Walks the chain on a thread of its own and says in the log whether it holds (startup).
    pub fn verify_in_background(&self, settings: &Settings) {
        if !self.enabled() {
            return;
        }
        let (path, log) = (path_of(settings), self.0.log.clone());
        let spawned = std::thread::Builder::new()
            .name("audit-verify".to_owned())
            .spawn(move || log_verification(&path, &log));
        if let Err(e) = spawned {
            error!(self.0.log, "could not start verifying the audit trail"; "error" => e.to_string());
        }
    }
}

impl Shared {
    fn on_failure_name(&self) -> &'static str {
        match self.on_failure {
            AuditOnFailure::Continue => "continue",
            AuditOnFailure::Refuse => "refuse",
        }
    }
}

fn log_verification(path: &Path, log: &Logger) {
    let report = open_for_reading(path).and_then(|conn| verify::verify(&conn));
    match report {
        Ok(report) => match &report.broken {
            None => info!(log, "the audit trail verifies";
                "rows" => report.rows, "head_seq" => report.head.seq,
                "head_hash" => &report.head.hash, "anchor_seq" => report.anchor.seq),
            Some(broken) => error!(log, "the audit trail was tampered with";
                "problem" => broken.to_string(), "seq" => broken.seq(),
                "head_seq" => report.head.seq),
        },
        Err(e) => error!(log, "could not verify the audit trail"; "error" => e.to_string()),
    }
}

/// Appends `record` now, in this process (the CLI, which runs beside a serving relay): one
/// immediate transaction under the chain's head. Does nothing when `audit.enabled` is off.
pub fn append_now(settings: &Settings, record: Record) -> Result<(), AuditError> {
    if !settings.audit.enabled {
        return Ok(());
    }
    let mut conn = open_for_writing(&path_of(settings))?;
    chain::append(&mut conn, std::slice::from_ref(&record)).map(|_| ())
}

#[cfg(test)]
mod tests;
