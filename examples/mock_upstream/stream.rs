//! The SSE body of a 200 answer: frames each event as `event: <type>\ndata: <json>\n\n`,
//! optionally sleeps before each one, and counts in [`MockState`] whether the body was sent to
//! its end or dropped early because the caller went away.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde_json::Value;

use super::MockState;

/// Before cutting a stream, give the server time to flush the events already produced, so the
/// caller sees them and then a dead connection (not a connection that died before them).
const FLUSH_BEFORE_CUT: Duration = Duration::from_millis(50);

/// How a stream ends once its events are sent.
pub(super) enum Ending {
    /// The body ends normally (the last event decides whether the answer succeeded).
    Complete,
    /// The connection is dropped: no terminal event, no chunked-encoding terminator.
    Cut,
}

/// The streaming body for `events`. Counts as started at once.
pub(super) fn sse_body(
    state: Arc<MockState>,
    events: &[Value],
    ending: Ending,
    delay: Duration,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    sse_frames(state, events.iter().map(frame).collect(), ending, delay)
}

/// The streaming body for ready-made byte chunks, sent exactly as given.
pub(super) fn sse_frames(
    state: Arc<MockState>,
    frames: Vec<Bytes>,
    ending: Ending,
    delay: Duration,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    state.stream_started();
    let progress = Progress {
        frames: frames.into_iter(),
        ending: Some(ending),
        delay,
        guard: EndGuard {
            state,
            reached_end: false,
        },
    };
    stream::unfold(progress, next_frame)
}

pub(super) fn frame(event: &Value) -> Bytes {
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {event}\n\n"))
}

struct Progress {
    frames: std::vec::IntoIter<Bytes>,
    /// Taken when the end is produced, so that a stream polled again just stays ended.
    ending: Option<Ending>,
    delay: Duration,
    guard: EndGuard,
}

async fn next_frame(mut progress: Progress) -> Option<(Result<Bytes, io::Error>, Progress)> {
    if let Some(frame) = progress.frames.next() {
        if !progress.delay.is_zero() {
            actix_rt::time::sleep(progress.delay).await;
        }
        return Some((Ok(frame), progress));
    }
    match progress.ending.take()? {
        Ending::Complete => {
            progress.guard.reached_end();
            None
        }
        Ending::Cut => {
            actix_rt::time::sleep(FLUSH_BEFORE_CUT).await;
            progress.guard.reached_end();
            // A body error makes the server drop the connection mid-response.
            let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "mock upstream cut");
            Some((Err(cut), progress))
        }
    }
}

/// Held by the stream: when the server drops the stream before its end (the caller closed
/// the connection), `Drop` counts a cancellation.
struct EndGuard {
    state: Arc<MockState>,
    reached_end: bool,
}

impl EndGuard {
    fn reached_end(&mut self) {
        if !self.reached_end {
            self.reached_end = true;
            self.state.stream_finished();
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.reached_end {
            self.state.stream_cancelled();
        }
    }
}
