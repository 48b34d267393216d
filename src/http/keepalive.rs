//! SSE keep-alive: during long upstream silence (a model thinking), a comment line
//! (`: keep-alive`) every `server.sse_keepalive_ms`, so that proxies and load balancers with
//! short idle timeouts keep the connection. SSE clients ignore comments (the OpenAI SDKs' and the
//! Codex CLI's parsers skip lines starting with `:`); they are only ever sent between whole
//! events.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, Sleep};

/// The comment sent.
pub const COMMENT: &[u8] = b": keep-alive\n\n";

pub struct KeepAlive {
    every: Duration,
    /// `None` when keep-alives are off.
    timer: Option<Pin<Box<Sleep>>>,
    last_sent: Instant,
}

impl KeepAlive {
    /// Keep-alives after `every` of silence towards the client; zero turns them off.
    pub fn new(every: Duration) -> KeepAlive {
        KeepAlive {
            every,
            timer: (!every.is_zero()).then(|| Box::pin(sleep(every))),
            last_sent: Instant::now(),
        }
    }

    /// The client was just sent something.
    pub fn sent(&mut self) {
        self.last_sent = Instant::now();
    }

    /// True when the client has been sent nothing for `every`; registers the waker otherwise.
    pub fn due(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timer) = self.timer.as_mut() else {
            return false;
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_sent + self.every;
            let now = Instant::now();
            if now >= deadline {
                self.last_sent = now;
                timer.as_mut().reset((now + self.every).into());
                return true;
            }
            // Something was sent since the timer was set: move it rather than reset it per chunk.
            timer.as_mut().reset(deadline.into());
        }
    }
}
