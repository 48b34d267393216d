//! The streaming answer: upstream bytes forwarded to the client as they arrive, untouched, with
//! the SSE watcher on the side. It starts with the events the hold-back read (see
//! `upstream::holdback`), then forwards the rest. After the first byte the relay can no longer change the status,
//! so an upstream cut, error or silence becomes a `response.failed` event and a clean end.
//! Dropping this stream (the client went away) drops the upstream body, which closes the
//! upstream connection at once. A captured call's tee sees every byte the client is sent.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use relay_actors::{Lease, Outcome};
use slog::{info, warn, Logger};

use super::keepalive::{KeepAlive, COMMENT};
use crate::capture::Tee;
use crate::edge::context::{StreamEnd, StreamLine};
use crate::edge::metrics::StreamOutcome;
use crate::governance::Admission;
use crate::obs::{bounded, limit};
use crate::recall::Recording;
use crate::upstream::holdback::Held;
use crate::upstream::sse::{data_of, failed_event, parse_data, StreamWatcher, Terminal};
use crate::upstream::UpstreamResponse;

/// The stream's clocks: `upstream.stream_idle_timeout_secs` and `server.sse_keepalive_ms`.
pub struct StreamTiming {
    pub idle_timeout: Duration,
    pub keepalive: Duration,
}

/// The upstream body, taken out of its response: a held stream keeps the bytes to come, not
/// the response's header map (a few KB each, times every stream held open).
type UpstreamBody = actix_web::dev::Payload;

pub struct RelayStream {
    upstream: UpstreamBody,
    watcher: StreamWatcher,
    /// The held-back start, sent first.
    prefix: Option<Bytes>,
    /// The upstream body ended during the hold-back.
    upstream_ended: bool,
    lease: Option<Lease>,
    keepalive: KeepAlive,
    idle: Pin<Box<actix_web::rt::time::Sleep>>,
    idle_timeout: Duration,
    last_byte: Instant,
    /// When the stream was made: its held-back start ready to be sent.
    started: Instant,
    bytes: u64,
    /// Some bytes have reached the client (the first is timed once).
    first_byte_sent: bool,
    done: bool,
    log: Logger,
    /// The caller's admission: holds its concurrency slots while the stream lives and counts
    /// the completed response's tokens.
    admission: Option<Admission>,
    /// The request's access line, written when the stream ends, and when the request arrived.
    access: Option<(StreamLine, Instant)>,
    /// The answer's recording for the response memory, finished when the stream completes.
    recording: Option<Recording>,
    /// The call's tee when a content capture covers it; its record is handed over on drop.
    capture: Option<Tee>,
}

impl RelayStream {
    pub fn new(
        mut upstream: UpstreamResponse,
        lease: Lease,
        held: Held,
        timing: StreamTiming,
        log: Logger,
    ) -> RelayStream {
        let StreamTiming {
            idle_timeout,
            keepalive,
        } = timing;
        let now = Instant::now();
        RelayStream {
            upstream: actix_web::HttpMessage::take_payload(&mut upstream),
            watcher: held.watcher,
            prefix: Some(held.prefix).filter(|p| !p.is_empty()),
            upstream_ended: held.ended,
            lease: Some(lease),
            keepalive: KeepAlive::new(keepalive),
            idle: Box::pin(actix_web::rt::time::sleep(idle_timeout)),
            idle_timeout,
            last_byte: now,
            started: now,
            bytes: held.bytes_read,
            first_byte_sent: false,
            done: false,
            log,
            admission: None,
            access: None,
            recording: None,
            capture: None,
        }
    }

    /// Records the answer for the response memory, which remembers it if the response
    /// completes: its output items are the ones the watcher kept (see `failover::hold_back`).
    pub fn with_recording(mut self, recording: Option<Recording>) -> RelayStream {
        self.recording = recording;
        self
    }

    /// The stream writes the request's access line (once the access log has filled `line`)
    /// when it ends, instead of the access log writing it when the headers leave.
    pub fn with_access_line(mut self, line: StreamLine, started: Instant) -> Self {
        self.access = Some((line, started));
        self
    }

    /// Tees the bytes sent to the client into `tee` (a captured call's).
    pub fn with_capture(mut self, tee: Option<Tee>) -> RelayStream {
        self.capture = tee.map(|mut tee| {
            tee.answered_stream(200);
            tee
        });
        self
    }

    /// Ties the caller's admission to this stream: released when the stream ends or is dropped.
    pub fn with_admission(mut self, admission: Admission) -> RelayStream {
        self.admission = Some(admission);
        self
    }

    /// Ends the stream: reports the lease and logs one line.
    fn finish(&mut self, outcome: Outcome, how: &'static str) {
        self.done = true;
        if let Some(lease) = self.lease.take() {
            lease.report(outcome);
        }
        let usage = match &self.watcher.terminal {
            Some(Terminal::Completed { usage }) => *usage,
            _ => None,
        };
        if let Some(recording) = self.recording.take() {
            if matches!(self.watcher.terminal, Some(Terminal::Completed { .. })) {
                let outputs = self.watcher.take_outputs();
                let id = self.watcher.response_id.clone();
                recording.finish(outputs, id, Instant::now());
            }
        }
        if let Some(admission) = self.admission.take() {
            if let Some(usage) = usage {
                admission.record_usage(usage);
            }
        }
        // The upstream's code: bounded before it reaches a log line.
        let failure_code = match &self.watcher.terminal {
            Some(Terminal::Failed { code }) => code
                .as_deref()
                .map(|c| bounded(c, limit::UPSTREAM_TEXT).into_owned()),
            _ => None,
        };
        let end = StreamEnd {
            how,
            outcome: StreamOutcome::of(how, self.watcher.terminal.as_ref()),
            bytes: self.bytes,
            events: self.watcher.events,
            input_tokens: usage.map(|u| u.input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            failure_code,
            streamed: self.started.elapsed(),
        };
        let access = self.access.take();
        match access.and_then(|(line, started)| Some((line.take()?, started))) {
            Some((line, started)) => line.write_stream(&self.log, started, &end),
            // Only without the access log in front (it fills the line before the first poll).
            None => info!(self.log, "stream ended";
                "how" => end.how, "bytes" => end.bytes, "events" => end.events,
                "duration_ms" => self.started.elapsed().as_millis() as u64,
                "input_tokens" => end.input_tokens, "output_tokens" => end.output_tokens,
                "failure_code" => end.failure_code),
        }
    }

    /// Times the first byte leaving, on the request's access line.
    fn first_byte(&self) {
        if let Some((line, started)) = &self.access {
            line.first_byte(*started);
        }
    }

    /// The relay's own terminal event for a stream the upstream did not finish.
    fn fail(&mut self, outcome: Outcome, code: &'static str, message: &'static str) -> Bytes {
        warn!(self.log, "upstream stream failed after the first byte"; "code" => code);
        let sequence = self.watcher.last_sequence.map_or(0, |s| s + 1);
        let event = failed_event(self.watcher.response_id.as_deref(), sequence, code, message);
        self.finish(outcome, code);
        event
    }

    /// True when the upstream has been silent for longer than the idle timeout.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_byte + self.idle_timeout;
            if Instant::now() >= deadline {
                return true;
            }
            // Bytes arrived since the timer was set: move it instead of resetting it per chunk.
            self.idle.as_mut().reset(deadline.into());
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.as_mut().next_bytes(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &next {
            if let Some(tee) = self.capture.as_mut() {
                tee.push(bytes);
            }
            self.keepalive.sent();
            if !self.first_byte_sent {
                self.first_byte_sent = true;
                self.first_byte();
            }
        }
        next
    }
}

impl RelayStream {
    fn next_bytes(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(prefix) = this.prefix.take() {
                return Poll::Ready(Some(Ok(prefix)));
            }
            if this.upstream_ended {
                return Poll::Ready(this.end_of_upstream(None).map(Ok));
            }
            let event = match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.last_byte = Instant::now();
                    this.bytes += chunk.len() as u64;
                    let whole_events = this.watcher.forward(chunk);
                    if whole_events.is_empty() {
                        continue;
                    }
                    whole_events
                }
                Poll::Ready(Some(Err(_))) => this.fail(
                    Outcome::TransportFailed,
                    "upstream_disconnected",
                    "The upstream connection failed before the response completed.",
                ),
                Poll::Ready(None) => {
                    let tail = this.watcher.flush();
                    return Poll::Ready(this.end_of_upstream(tail).map(Ok));
                }
                Poll::Pending if this.idle_expired(cx) => this.fail(
                    Outcome::TimedOut,
                    "upstream_idle_timeout",
                    "The upstream sent nothing for too long; the relay ended the stream.",
                ),
                Poll::Pending if this.keepalive.due(cx) => Bytes::from_static(COMMENT),
                Poll::Pending => return Poll::Pending,
            };
            return Poll::Ready(Some(Ok(event)));
        }
    }
}

impl RelayStream {
    /// The upstream's body ended; `tail` is what was left of an unterminated last event.
    fn end_of_upstream(&mut self, tail: Option<Bytes>) -> Option<Bytes> {
        if self.watcher.terminal.is_some() {
            self.finish(Outcome::Completed { status: 200 }, "completed");
            return tail;
        }
        let failed = self.fail(
            Outcome::TransportFailed,
            "upstream_disconnected",
            "The upstream closed the stream before the response completed.",
        );
        // An upstream that closes halfway through an event leaves it torn: clients parse every
        // event's data as JSON, so a torn one is dropped rather than sent before the failure.
        let tail = tail.filter(|t| data_of(t).is_none() || parse_data(t).is_some());
        Some(match tail {
            Some(tail) => [tail, failed].concat().into(),
            None => failed,
        })
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::ClientGone, "client_disconnected");
        }
    }
}
