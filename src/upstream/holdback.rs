//! Holding back the start of a 200 stream until the first output item: the backend may answer
//! 200 and then `response.failed` (`server_is_overloaded`, `slow_down`) before producing anything;
//! while nothing has reached the client the request can still move to another account.
//!
//! The events are read through the same [`StreamWatcher`] that forwards the rest of the stream,
//! so the held bytes are exactly what would have been forwarded (no re-encoding) and the watcher
//! carries on from where the hold-back stopped. Bounded in bytes and time: at either bound the
//! stream is committed as it is and flows on.

use std::time::{Duration, Instant};

use actix_web::rt::time::timeout;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::sse::{StreamWatcher, Terminal};
use super::UpstreamResponse;

/// The bounds of the hold-back (`routing.hold_back_bytes`, `routing.hold_back_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_wait: Duration,
}

/// What the start of the stream showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Output started, the stream ended with a result, or a bound was reached: this account
    /// answers the request.
    Commit,
    /// `response.failed` arrived before any output item, with this code.
    FailedBeforeOutput { code: Option<String> },
    /// The connection failed, or the stream ended without a terminal event, before any output.
    Cut,
}

/// The held start of a stream: the whole events read so far, and the watcher that read them.
pub struct Held {
    pub verdict: Verdict,
    pub watcher: StreamWatcher,
    /// Whole events, exactly as they will be forwarded.
    pub prefix: Bytes,
    /// Upstream bytes read (what the byte counters of the stream start from).
    pub bytes_read: u64,
    /// The upstream body has ended (its unterminated last event, if any, is in `prefix`).
    pub ended: bool,
}

/// Reads the start of `response` through `watcher` until the verdict is clear or a bound is hit.
pub async fn hold_back(
    response: &mut UpstreamResponse,
    limits: Limits,
    watcher: StreamWatcher,
) -> Held {
    let deadline = Instant::now() + limits.max_wait;
    let mut held = Held {
        verdict: Verdict::Commit,
        watcher,
        prefix: Bytes::new(),
        bytes_read: 0,
        ended: false,
    };
    let mut prefix = BytesMut::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, response.next()).await {
            Ok(Some(Ok(chunk))) => {
                held.bytes_read += chunk.len() as u64;
                prefix.extend_from_slice(&held.watcher.forward(chunk));
                if let Some(verdict) = decided(&held.watcher) {
                    held.verdict = verdict;
                    break;
                }
                if prefix.len() >= limits.max_bytes {
                    break;
                }
            }
            Ok(None) => {
                held.ended = true;
                if let Some(tail) = held.watcher.flush() {
                    prefix.extend_from_slice(&tail);
                }
                held.verdict = decided(&held.watcher).unwrap_or(Verdict::Cut);
                break;
            }
            Ok(Some(Err(_))) => {
                held.verdict = Verdict::Cut;
                break;
            }
            // Bounded in time: a slow start is committed and flows (idle limits apply later).
            Err(_elapsed) => break,
        }
    }
    held.prefix = prefix.freeze();
    held
}

/// The verdict once the watched events decide it; `None` while they do not yet.
fn decided(watcher: &StreamWatcher) -> Option<Verdict> {
    if watcher.saw_output {
        return Some(Verdict::Commit);
    }
    match &watcher.terminal {
        Some(Terminal::Failed { code }) => Some(Verdict::FailedBeforeOutput { code: code.clone() }),
        Some(_) => Some(Verdict::Commit),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(text: &str) -> StreamWatcher {
        let mut watcher = StreamWatcher::default();
        watcher.forward(Bytes::from(text.to_owned()));
        watcher
    }

    #[test]
    fn the_first_output_item_or_a_result_commits() {
        let created = "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n";
        assert_eq!(decided(&watch(created)), None);
        let output = format!("{created}data: {{\"type\":\"response.output_item.added\"}}\n\n");
        assert_eq!(decided(&watch(&output)), Some(Verdict::Commit));
        let done = "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\"}}\n\n";
        assert_eq!(decided(&watch(done)), Some(Verdict::Commit));
    }

    #[test]
    fn a_failure_before_output_is_reported_with_its_code() {
        let failed = "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"slow_down\"}}}\n\n";
        assert_eq!(
            decided(&watch(failed)),
            Some(Verdict::FailedBeforeOutput {
                code: Some("slow_down".into())
            })
        );
    }
}
