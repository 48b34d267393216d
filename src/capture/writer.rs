//! The capture writer: one thread that seals the records tees hand over and writes them to the
//! capture file in batches, and deletes records past `audit.capture.retention_days`. The request
//! path never waits on it: a full queue drops the record, counted and logged (`tee.rs`).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use slog::{info, warn, Logger};

use super::db::CaptureDb;
use super::metrics::{CaptureMetrics, Fate};
use super::records::CapturedRecord;
use super::tee::Sink;
use crate::store::Store;

/// Records waiting for the writer at most; past it, new ones are dropped.
const QUEUE: usize = 1024;
/// Records written in one transaction at most.
const BATCH: usize = 64;
/// How often old records are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What the writer needs: the file, the key to seal with (the store's), how long to keep.
pub(super) struct WriterParts {
    pub(super) db: CaptureDb,
    pub(super) store: Store,
    pub(super) retention_days: u64,
    pub(super) metrics: CaptureMetrics,
    pub(super) log: Logger,
}

/// Starts the writer's thread; returns where tees send their records.
pub(super) fn spawn(parts: WriterParts) -> std::io::Result<Sink> {
    let (queue, received) = sync_channel(QUEUE);
    let sink = Sink {
        queue,
        metrics: parts.metrics.clone(),
        log: parts.log.clone(),
    };
    std::thread::Builder::new()
        .name("capture-writer".into())
        .spawn(move || run(&parts, &received))?;
    Ok(sink)
}

fn run(parts: &WriterParts, received: &Receiver<CapturedRecord>) {
    prune(parts);
    let mut pruned = Instant::now();
    loop {
        match received.recv_timeout(PRUNE_EVERY) {
            Ok(first) => {
                let mut batch = vec![first];
                batch.extend(received.try_iter().take(BATCH - 1));
                write(parts, &batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            prune(parts);
            pruned = Instant::now();
        }
    }
}

fn write(parts: &WriterParts, batch: &[CapturedRecord]) {
    let n = batch.len() as u64;
    match parts.db.insert_records(parts.store.master_key(), batch) {
        Ok(()) => parts.metrics.count(Fate::Written, n),
        Err(e) => {
            parts.metrics.count(Fate::Failed, n);
            warn!(parts.log, "captured calls could not be written to the capture file";
                "records" => n, "error" => e.to_string());
        }
    }
}

fn prune(parts: &WriterParts) {
    let keep_secs = i64::try_from(parts.retention_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let before = crate::store::now_unix().saturating_sub(keep_secs);
    match parts.db.prune_records(before) {
        Ok(0) => {}
        Ok(n) => info!(parts.log, "deleted captured calls past their retention";
            "records" => n, "retention_days" => parts.retention_days),
        Err(e) => warn!(parts.log, "could not delete captured calls past their retention";
            "error" => e.to_string()),
    }
}
