//! What a captured call keeps while it runs: the request body (a shared handle on the bytes
//! already read, not a copy) and the response as it leaves, bounded by
//! `audit.capture.max_response_bytes` and cut with a marker past it. Dropped — the answer sent,
//! the stream ended or the client gone — it hands the record to the writer without waiting.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use bytes::Bytes;
use slog::{warn, Logger};

use super::metrics::{CaptureMetrics, Fate};
use super::records::CapturedRecord;

/// What the writer's queue carries: a record, or a wish to be told once everything queued
/// before it is written (a graceful stop).
pub(super) enum Job {
    Record(CapturedRecord),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Where tees hand their records: the writer's queue.
pub(super) struct Sink {
    pub(super) queue: SyncSender<Job>,
    pub(super) metrics: CaptureMetrics,
    pub(super) log: Logger,
}

/// One captured call in flight. Small (its record is boxed): every held stream carries an
/// `Option<Tee>`, captured or not.
pub struct Tee {
    record: Option<Box<CapturedRecord>>,
    limit: usize,
    sink: Arc<Sink>,
}

/// The marker a cut response ends with (an SSE comment, which clients ignore).
pub const TRUNCATED_MARKER: &[u8] =
    b"\n: codex-relay capture: the response was cut here (audit.capture.max_response_bytes)\n\n";

impl Tee {
    pub(super) fn new(record: CapturedRecord, limit: usize, sink: Arc<Sink>) -> Tee {
        Tee {
            record: Some(Box::new(record)),
            limit,
            sink,
        }
    }

    /// The capture recording this call: its audit row names it, so the record is found from the
    /// row (by this id and the request id).
    pub fn capture_id(&self) -> Option<&Arc<str>> {
        self.record.as_ref().map(|record| &record.rule_id)
    }

    /// Appends bytes the client was sent, within the bound.
    pub fn push(&mut self, bytes: &[u8]) {
        let Some(record) = self.record.as_mut() else {
            return;
        };
        if record.truncated {
            return;
        }
        let room = self.limit.saturating_sub(record.response.len());
        if bytes.len() <= room {
            record.response.extend_from_slice(bytes);
            return;
        }
        record.response.extend_from_slice(&bytes[..room]);
        record.response.extend_from_slice(TRUNCATED_MARKER);
        record.truncated = true;
    }

    /// The status the client got.
    pub fn answered(&mut self, status: u16) {
        if let Some(record) = self.record.as_mut() {
            record.status = status;
        }
    }

    /// A streamed answer, begun with `status`.
    pub fn answered_stream(&mut self, status: u16) {
        if let Some(record) = self.record.as_mut() {
            record.status = status;
            record.stream = true;
        }
    }

    /// A JSON answer: its bytes as the client gets them.
    pub fn answered_json(&mut self, status: u16, value: &serde_json::Value) {
        self.answered(status);
        if let Ok(bytes) = serde_json::to_vec(value) {
            self.push(&bytes);
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        let Some(record) = self.record.take() else {
            return;
        };
        match self.sink.queue.try_send(Job::Record(*record)) {
            Ok(())
            | Err(TrySendError::Full(Job::Flush(_)) | TrySendError::Disconnected(Job::Flush(_))) => {
            }
            Err(
                TrySendError::Full(Job::Record(record))
                | TrySendError::Disconnected(Job::Record(record)),
            ) => {
                self.sink.metrics.count(Fate::Dropped, 1);
                warn!(self.sink.log, "a captured call could not be queued for the capture file; it is not kept";
                    "request_id" => record.request_id, "capture_id" => &*record.rule_id);
            }
        }
    }
}

/// A record as the request path starts it: the request, no answer yet.
pub(super) fn started(
    rule_id: Arc<str>,
    request_id: &str,
    tenant: Option<&str>,
    key_id: &Arc<str>,
    request: &Bytes,
    now: i64,
) -> CapturedRecord {
    CapturedRecord {
        rule_id,
        request_id: request_id.to_owned(),
        captured_at: now,
        tenant: tenant.map(str::to_owned),
        key_id: Arc::clone(key_id),
        stream: false,
        status: 0,
        truncated: false,
        request: request.clone(),
        response: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tee(queue: SyncSender<Job>, limit: usize) -> (Tee, CaptureMetrics) {
        let metrics = CaptureMetrics::default();
        let sink = Arc::new(Sink {
            queue,
            metrics: metrics.clone(),
            log: Logger::root(slog::Discard, slog::o!()),
        });
        let key: Arc<str> = Arc::from("k");
        let record = started(Arc::from("r"), "req", None, &key, &Bytes::new(), 0);
        (Tee::new(record, limit, sink), metrics)
    }

    #[test]
    fn a_stream_outside_every_capture_carries_three_words_at_most() {
        assert!(std::mem::size_of::<Option<Tee>>() <= 3 * std::mem::size_of::<usize>());
    }

    #[test]
    fn a_record_the_writer_cannot_take_is_counted_as_dropped() {
        let (queue, _received) = std::sync::mpsc::sync_channel(0);
        let (tee, metrics) = tee(queue, 8);
        drop(tee);
        assert_eq!(metrics.counted(Fate::Dropped), 1);
    }

    #[test]
    fn a_response_past_the_bound_is_cut_with_a_marker() {
        let (queue, received) = std::sync::mpsc::sync_channel(1);
        let (mut tee, _) = tee(queue, 8);
        tee.push(b"12345");
        tee.push(b"6789");
        tee.push(b"more");
        drop(tee);
        let Ok(Job::Record(record)) = received.recv() else {
            panic!("a record was queued");
        };
        assert!(record.truncated);
        assert_eq!(
            record.response,
            [b"12345678".as_slice(), TRUNCATED_MARKER].concat()
        );
    }
}
