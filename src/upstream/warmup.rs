//! Keeps a burst of requests on a cold worker from opening one upstream connection each.
//!
//! awc's pool opens a new connection for every request that finds none idle, and an HTTP/2
//! connection only goes back to the pool once its first request is under way. So a burst that
//! reaches a worker with no connection (after a start, after an idle spell, or once its connections
//! aged out) starts one TLS and HTTP/2 handshake per request: 200 requests opened 201 connections
//! in the load benchmark, each costing a handshake and tens of KB for as long as the pool kept it.
//!
//! Here the first request on a cold worker leads: it connects while the others wait, and once
//! awc reads its body (after it has returned an HTTP/2 connection to the pool) they go on and
//! share that connection. Over HTTP/1.1 each request needs its own connection anyway; the others
//! then wait for one connect at most. A leader that fails before its body is read hands the lead to
//! a waiter, and nobody waits longer than the connect timeout.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use tokio::sync::Notify;

use super::outbound::{CONN_KEEP_ALIVE, CONN_LIFETIME};

/// One worker's view of whether its pool holds a connection to the upstream.
#[derive(Clone)]
pub struct Warmup(Rc<Inner>);

struct Inner {
    state: Cell<State>,
    changed: Notify,
    /// How long a request waits for a leader before connecting on its own.
    patience: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// No connection is known to be in the pool.
    Cold,
    /// A request is connecting; others wait for it.
    Leading,
    /// A connection went back to the pool at `since` and was last handed a request at `used`.
    Warm { since: Instant, used: Instant },
}

/// A request body, ready to send.
pub enum Outgoing {
    /// A connection is in the pool (or waiting for one took too long): the bytes as they are.
    Plain(Bytes),
    /// This request connects for the worker; reading its body tells the waiters to go on.
    Leading(LeadingBody),
}

impl Warmup {
    pub fn new(patience: Duration) -> Warmup {
        Warmup(Rc::new(Inner {
            state: Cell::new(State::Cold),
            changed: Notify::new(),
            patience,
        }))
    }

    /// Waits while another request is connecting, then wraps the body to send.
    pub async fn outgoing(&self, body: Bytes) -> Outgoing {
        // awc reads no empty body, so such a request could not tell when it is under way.
        if body.is_empty() {
            return Outgoing::Plain(body);
        }
        let mut deadline = None;
        loop {
            let now = Instant::now();
            match self.0.state.get() {
                State::Warm { since, used } if warm(now, since, used) => {
                    self.0.state.set(State::Warm { since, used: now });
                    return Outgoing::Plain(body);
                }
                State::Leading => {
                    // The worker is one thread: nothing can settle the lead between reading the
                    // state and registering here, so no wake-up is missed.
                    let changed = self.0.changed.notified();
                    let deadline = *deadline.get_or_insert(now + self.0.patience);
                    let left = deadline.saturating_duration_since(now);
                    if actix_web::rt::time::timeout(left, changed).await.is_err() {
                        return Outgoing::Plain(body);
                    }
                }
                State::Cold | State::Warm { .. } => {
                    self.0.state.set(State::Leading);
                    return Outgoing::Leading(LeadingBody {
                        body,
                        signal: Some(Rc::clone(&self.0)),
                    });
                }
            }
        }
    }

    /// A request failed: the pool may hold no connection now, so the next request leads.
    pub fn lost(&self) {
        if matches!(self.0.state.get(), State::Warm { .. }) {
            self.0.state.set(State::Cold);
        }
    }
}

/// Whether awc's pool still holds the connection that went back to it at `since`: it drops one
/// idle longer than [`CONN_KEEP_ALIVE`] or older than [`CONN_LIFETIME`].
fn warm(now: Instant, since: Instant, used: Instant) -> bool {
    now.duration_since(used) < CONN_KEEP_ALIVE && now.duration_since(since) < CONN_LIFETIME
}

impl Inner {
    fn settle(&self, state: State) {
        if self.state.get() == State::Leading {
            self.state.set(state);
            self.changed.notify_waiters();
        }
    }
}

/// The leader's request body: the bytes as they are, and a signal on first read.
pub struct LeadingBody {
    body: Bytes,
    signal: Option<Rc<Inner>>,
}

impl LeadingBody {
    fn ready(&mut self) {
        if let Some(inner) = self.signal.take() {
            let now = Instant::now();
            inner.settle(State::Warm {
                since: now,
                used: now,
            });
        }
    }
}

impl Drop for LeadingBody {
    /// Dropped unread: the connection failed, so the next waiter leads.
    fn drop(&mut self) {
        if let Some(inner) = self.signal.take() {
            inner.settle(State::Cold);
        }
    }
}

impl MessageBody for LeadingBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.body.len() as u64)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        this.ready();
        if this.body.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(std::mem::take(&mut this.body))))
    }
}

#[cfg(test)]
mod tests;
