//! The one writer of the audit trail: a thread of its own that owns the file's connection. Rows
//! queue in a bounded channel (the request path only tries to send); the writer appends what is
//! pending in one transaction at most `audit.flush_interval_ms` after the first of it arrived, or
//! at once when `audit.flush_rows` are pending. A failed write loses its batch (counted, logged
//! once per run of failures) and closes the file, which is opened again on the next tick. A
//! flush request is answered once every row queued before it is written. It also prunes old
//! rows, between batches, when `audit.retention_days` is set.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use slog::{error, info, warn};

use super::chain::Appender;
use super::prepared::Prepared;
use super::record::now_ms;
use super::{file, retention, Shared};

/// What the queue carries.
pub(super) enum Message {
    /// A row prepared by the thread that recorded it (`prepared.rs`): a buffer's pointer, length
    /// and capacity in the queue's slot, allocated up front for `audit.queue_rows`.
    Row(Prepared),
    /// Answered once every row queued before it is written (or lost).
    Flush(SyncSender<()>),
}

/// A batch, the rows as the queue carried them.
type Batch = Vec<Prepared>;

/// How often retention looks for rows to prune.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Writer {
    pub path: PathBuf,
    pub conn: Option<Connection>,
    pub queue: Receiver<Message>,
    pub shared: Arc<Shared>,
    pub interval: Duration,
    pub flush_rows: usize,
    pub retention_days: u64,
    /// Made at the first batch: it holds the block being indexed as rows are appended.
    pub appender: Option<Appender>,
}

impl Writer {
    /// Runs until every sender is gone.
    pub fn run(mut self) {
        let mut last_prune: Option<Instant> = None;
        loop {
            let first = match self.queue.recv_timeout(self.interval) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    self.tick(&mut last_prune);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let (batch, waiters) = self.gather(first);
            self.write(batch);
            for waiter in waiters {
                let _ = waiter.send(());
            }
            self.tick(&mut last_prune);
        }
    }

    /// The rows pending from `first` on, until the interval has passed, `flush_rows` are
    /// pending, or a flush is asked for. Between looks at the queue the writer sleeps rather
    /// than waiting on it: a receiver waiting on the queue is woken by every row sent (a system
    /// call and a switch of threads per row, on the request path's side too); a sleeping one
    /// is woken only by [`Shared::wake_writer`], when a batch is full or a flush is asked for.
    fn gather(&self, first: Message) -> (Batch, Vec<SyncSender<()>>) {
        let deadline = Instant::now() + self.interval;
        let (mut batch, mut waiters) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        loop {
            while let Some(message) = next.take() {
                match message {
                    Message::Row(record) => batch.push(record),
                    Message::Flush(waiter) => waiters.push(waiter),
                }
                if batch.len() >= self.flush_rows {
                    return (batch, waiters);
                }
                next = self.queue.try_recv().ok();
            }
            // A flush takes whatever is already queued, without waiting for more.
            let left = deadline.saturating_duration_since(Instant::now());
            if !waiters.is_empty() || left.is_zero() {
                return (batch, waiters);
            }
            std::thread::park_timeout(left);
            next = self.queue.try_recv().ok();
        }
    }

    /// Appends `batch`; on failure counts it lost and closes the file.
    fn write(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let rows = batch.len() as u64;
        self.shared.metrics.pending.dec_by(rows as i64);
        let written = self.append(&batch);
        match written {
            Ok(_) => {
                self.shared.metrics.written.inc_by(rows);
                self.shared.recovered();
            }
            Err(cause) => {
                self.conn = None;
                self.shared.metrics.write_errors.inc();
                self.shared.metrics.lost.inc_by(rows);
                self.shared.failed(&cause);
            }
        }
    }

    /// Appends `batch` through the open connection (opened again after a failure).
    fn append(&mut self, batch: &[Prepared]) -> Result<(), String> {
        if self.appender.is_none() {
            self.appender = Some(Appender::new().map_err(|e| e.to_string())?);
        }
        self.connection();
        match (self.conn.as_mut(), self.appender.as_mut()) {
            (Some(conn), Some(appender)) => appender
                .append(conn, batch)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            _ => Err("the audit trail is not open".to_owned()),
        }
    }

    /// The open connection, opened again after a failure.
    fn connection(&mut self) -> Option<&mut Connection> {
        if self.conn.is_none() {
            match file::open_for_writing(&self.path) {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => self.shared.failed(&e.to_string()),
            }
        }
        self.conn.as_mut()
    }

    /// Between batches: reopen a trail that failed (so `refuse` recovers without traffic) and
    /// prune when it is time.
    fn tick(&mut self, last_prune: &mut Option<Instant>) {
        if self.connection().is_some() && !self.shared.healthy.load(Ordering::Relaxed) {
            self.shared.recovered();
        }
        if self.retention_days == 0 || last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        *last_prune = Some(Instant::now());
        let days = i64::try_from(self.retention_days).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(days.saturating_mul(86_400_000));
        let log = self.shared.log.clone();
        if let Some(conn) = self.connection() {
            match retention::prune(conn, cutoff) {
                Ok(0) => {}
                Ok(rows) => info!(log, "pruned old audit rows"; "rows" => rows),
                Err(e) => warn!(log, "could not prune old audit rows"; "error" => e.to_string()),
            }
        }
    }
}

impl Shared {
    /// Wakes the writer from its sleep between looks at the queue (`Writer::gather`).
    pub(super) fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// A write failed (or the trail could not be opened): refuse while it lasts, and say so
    /// once per run of failures.
    pub(super) fn failed(&self, cause: &str) {
        self.healthy.store(false, Ordering::Relaxed);
        if !self.losing.swap(true, Ordering::Relaxed) {
            error!(self.log, "audit rows cannot be written; they are lost until it recovers";
                "error" => cause, "on_failure" => self.on_failure_name());
        }
    }

    /// A write succeeded: the end of a run of failures, if one was going on.
    pub(super) fn recovered(&self) {
        self.healthy.store(true, Ordering::Relaxed);
        if self.losing.swap(false, Ordering::Relaxed) {
            info!(self.log, "audit rows are written again";
                "rows_lost_total" => self.metrics.lost.get());
        }
    }
}
