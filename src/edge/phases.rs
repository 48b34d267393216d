//! The time each phase of a request took, for its access line: the guard, admission, reading the
//! body, waiting for an account, failed attempts, the upstream's head and held-back start, and
//! the rest of the answer. Whoever runs a phase records it in the request's [`Phases`] (a
//! fixed-size value in the request's extensions, taken with a few `Instant::now()`); the access
//! line writes them as `phase_<name>_us`.
//!
//! Whole microseconds, because authentication, admission and a lease are microseconds each and a
//! whole-millisecond field would show them all as 0; integers rather than fractional
//! milliseconds because every request writes this line, and an integer is a fraction of the
//! cost of a float to write. A phase the request never reached is left out of the line, for
//! the same reason.

use std::time::Duration;

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

/// The access line's fields: `phase_<name>_us` and `attempts`, each only when reached.
impl KV for Phases {
    fn serialize(&self, _: &Record, out: &mut dyn Serializer) -> slog::Result {
        let fields = [
            ("phase_auth_us", self.auth),
            ("phase_admission_us", self.admission),
            ("phase_body_us", self.body),
            ("phase_lease_us", self.lease),
            ("phase_failover_us", self.failover),
            ("phase_upstream_connect_us", self.upstream_connect),
            ("phase_upstream_first_byte_us", self.upstream_first_byte),
            ("phase_stream_us", self.stream),
        ];
        for (key, took) in fields {
            if let Some(took) = took {
                out.emit_u64(key, microseconds(took))?;
            }
        }
        match self.attempts {
            Some(attempts) => out.emit_u32("attempts", attempts),
            None => Ok(()),
        }
    }
}

/// Whole microseconds (a phase longer than half a million years saturates).
fn microseconds(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_whole_microseconds() {
        assert_eq!(microseconds(Duration::from_nanos(1_234_567)), 1234);
        assert_eq!(microseconds(Duration::from_nanos(999)), 0);
        assert_eq!(microseconds(Duration::from_secs(90)), 90_000_000);
        assert_eq!(microseconds(Duration::MAX), u64::MAX);
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
