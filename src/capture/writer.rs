//! The capture writer: one thread that seals the records tees hand over and writes them to the
//! capture file in batches, and deletes records past `audit.capture.retention_days`. The request
//! path never waits on it: a full queue drops the record, counted and logged (`tee.rs`). A
//! graceful stop asks it to say when what was queued before is written ([`Job::Flush`]).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use slog::{info, warn, Logger};

use super::db::CaptureDb;
use super::metrics::{CaptureMetrics, Fate};
use super::records::CapturedRecord;
use super::tee::{Job, Sink};
use super::CaptureError;
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

fn run(parts: &WriterParts, received: &Receiver<Job>) {
    prune(parts);
    let mut pruned = Instant::now();
    loop {
        match received.recv_timeout(PRUNE_EVERY) {
            Ok(first) => {
                let jobs = std::iter::once(first).chain(received.try_iter().take(BATCH - 1));
                let mut records = Vec::new();
                let mut flushes = Vec::new();
                for job in jobs {
                    match job {
                        Job::Record(record) => records.push(record),
                        Job::Flush(done) => flushes.push(done),
                    }
                }
                if !records.is_empty() {
                    write(parts, &records);
                }
                // Everything queued before each flush is written now: say so.
                for done in flushes {
                    let _ = done.send(());
                }
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
    // The store's key now: after a `store rekey` made while the relay runs, the new one.
    let sealed = parts
        .store
        .sealing_key_now()
        .map_err(CaptureError::from)
        .and_then(|key| parts.db.insert_records(&key, batch));
    match sealed {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::capture::db::NewRule;
    use crate::capture::rules::Subject;
    use crate::capture::tee::{started, Tee};
    use crate::store::MasterKey;

    #[test]
    fn a_flush_is_answered_once_every_record_queued_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relay.db"), 2, MasterKey::generate()).unwrap();
        let db = CaptureDb::open(&dir.path().join("capture.db")).unwrap();
        let rule = db
            .insert_rule(&NewRule {
                subject: Subject::Key("k".into()),
                reason: None,
                started_by: "cli:test".into(),
                started_at: 0,
                ends_at: i64::MAX,
            })
            .unwrap();
        let sink = Arc::new(
            spawn(WriterParts {
                db: db.clone(),
                store,
                retention_days: 30,
                metrics: CaptureMetrics::default(),
                log: Logger::root(slog::Discard, slog::o!()),
            })
            .unwrap(),
        );
        let key: Arc<str> = Arc::from("k");
        let body = Bytes::from(vec![b'x'; 4096]);
        let now = crate::store::now_unix();
        for n in 0..100 {
            let record = started(
                Arc::from(rule.as_str()),
                &n.to_string(),
                None,
                &key,
                &body,
                now,
            );
            drop(Tee::new(record, 1024, Arc::clone(&sink)));
        }
        let (done, written) = std::sync::mpsc::channel();
        sink.queue.send(Job::Flush(done)).unwrap();
        written.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(db.get_rule(&rule).unwrap().records, 100);
    }
}
