//! The time each phase of a request took, for its access line: the guard, admission, reading the
//! body, waiting for an account, failed attempts, the upstream's head and held-back start, and
//! the rest of the answer. Whoever runs a phase records it in the request's [`Phases`] (a
//! fixed-size value in the request's extensions, taken with a few `Instant::now()`); the access
//! line writes them as `phase_<name>_ms`.
//!
//! Milliseconds, like `duration_ms`, so a line's phases compare with its duration at a glance;
//! with microsecond precision (a float with 3 decimals), because authentication, admission and a
//! lease are microseconds each and a whole-millisecond field would show them all as 0. A phase
//! the request never reached is `null`.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::HttpMessage;
use slog::{Record, Serializer, KV};

/// One request's phase timings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    /// The bearer guard: reading the token and finding what it stands for.
    pub auth: Option<Duration>,
    /// The request rate, then the concurrency slots, token quotas and global cap (summed).
    pub admission: Option<Duration>,
    /// Reading (and decoding) the request body.
    pub body: Option<Duration>,
    /// Waiting for an account's lease, summed over attempts.
    pub lease: Option<Duration>,
    /// Attempts that did not answer (their upstream calls) and the pauses between attempts.
    pub failover: Option<Duration>,
    /// The last attempt: from sending the request to the upstream's response head (or the send
    /// failing).
    pub upstream_connect: Option<Duration>,
    /// The last attempt: from sending the request to the held-back start of a 200 stream being
    /// ready (or the hold-back ending the attempt). Includes `upstream_connect`.
    pub upstream_first_byte: Option<Duration>,
    /// From the held-back start being ready to the end of the answer: the stream's end, or the
    /// rest of the upstream's answer read for a non-streaming response.
    pub stream: Option<Duration>,
    /// How many accounts were tried.
    pub attempts: Option<u32>,
}

/// A phase one component times on its own.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    Auth,
    Admission,
    Body,
    Stream,
}

impl Phases {
    /// Adds `took` to `phase` of the request's phases.
    pub fn add(request: &impl HttpMessage, phase: Phase, took: Duration) {
        Phases::update(request, |phases| {
            let slot = match phase {
                Phase::Auth => &mut phases.auth,
                Phase::Admission => &mut phases.admission,
                Phase::Body => &mut phases.body,
                Phase::Stream => &mut phases.stream,
            };
            *slot = Some(slot.unwrap_or_default() + took);
        });
    }

    /// Changes the request's phases (made on first use).
    pub fn update(request: &impl HttpMessage, change: impl FnOnce(&mut Phases)) {
        let mut extensions = request.extensions_mut();
        match extensions.get_mut::<Phases>() {
            Some(phases) => change(phases),
            None => {
                let mut phases = Phases::default();
                change(&mut phases);
                extensions.insert(phases);
            }
        }
    }

    /// The request's phases so far.
    pub fn of(request: &impl HttpMessage) -> Phases {
        request
            .extensions()
            .get::<Phases>()
            .copied()
            .unwrap_or_default()
    }
}

/// Runs `work`, adding the time it took to `phase` of the request's phases.
pub async fn timed<F: Future>(request: &impl HttpMessage, phase: Phase, work: F) -> F::Output {
    let began = Instant::now();
    let output = work.await;
    Phases::add(request, phase, began.elapsed());
    output
}

/// The access line's fields: `phase_<name>_ms` and `attempts`.
impl KV for Phases {
    fn serialize(&self, _: &Record, out: &mut dyn Serializer) -> slog::Result {
        let fields = [
            ("phase_auth_ms", self.auth),
            ("phase_admission_ms", self.admission),
            ("phase_body_ms", self.body),
            ("phase_lease_ms", self.lease),
            ("phase_failover_ms", self.failover),
            ("phase_upstream_connect_ms", self.upstream_connect),
            ("phase_upstream_first_byte_ms", self.upstream_first_byte),
            ("phase_stream_ms", self.stream),
        ];
        for (key, took) in fields {
            match took {
                Some(took) => out.emit_f64(key, milliseconds(took))?,
                None => out.emit_none(key)?,
            }
        }
        match self.attempts {
            Some(attempts) => out.emit_u32("attempts", attempts),
            None => out.emit_none("attempts"),
        }
    }
}

/// Milliseconds with microsecond precision: the shortest float that reads back as the same
/// number of microseconds has at most 3 decimals.
fn milliseconds(took: Duration) -> f64 {
    took.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_microseconds_and_no_more() {
        let took = Duration::from_nanos(1_234_567);
        assert_eq!(milliseconds(took).to_string(), "1.234");
        assert_eq!(milliseconds(Duration::from_micros(12)).to_string(), "0.012");
        assert_eq!(milliseconds(Duration::from_secs(90)).to_string(), "90000");
    }

    #[test]
    fn a_phase_timed_twice_is_summed() {
        let request = actix_web::test::TestRequest::default().to_http_request();
        Phases::add(&request, Phase::Admission, Duration::from_micros(5));
        Phases::add(&request, Phase::Admission, Duration::from_micros(7));
        let phases = Phases::of(&request);
        assert_eq!(phases.admission, Some(Duration::from_micros(12)));
        assert_eq!(phases.auth, None);
    }
}
