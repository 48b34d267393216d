//! Request rates per key and per tenant: GCRA through `governor`, one limiter per subject. A
//! limiter is rebuilt when its subject's rate changes (a key or tenant edited by an operator),
//! and dropped when its subject leaves the key ring (a key revoked, a tenant deleted).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::bounds::{BURST, BURST_MINUTES_OF_RATE};
use crate::domain::Subject;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// Where a subject's request rate stands after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Requests per minute.
    pub limit: u32,
    /// Requests that may still be made at once.
    pub remaining: u32,
    /// Until the burst capacity is whole again.
    pub reset: Duration,
}

/// A request over the rate: when the next one would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDenied {
    pub retry_after: Duration,
    pub status: RateStatus,
}

struct Cell<C: Clock> {
    rate: (u32, u32),
    limiter: Arc<Limiter<C>>,
}

/// Every subject's limiter.
pub struct RateBook<C: Clock = DefaultClock> {
    clock: C,
    cells: Mutex<HashMap<Subject, Cell<C>>>,
}

impl Default for RateBook<DefaultClock> {
    fn default() -> Self {
        RateBook::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateBook<C> {
    pub fn with_clock(clock: C) -> RateBook<C> {
        RateBook {
            clock,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Lets one request of `subject` through at `rpm` with `burst`, or says when it may come.
    /// A burst past its bound (stored before bursts were bounded) is held to it: `governor`'s
    /// arithmetic overflows past it.
    pub fn check(&self, subject: &Subject, rpm: u32, burst: u32) -> Result<RateStatus, RateDenied> {
        let burst = bounded_burst(rpm, burst);
        let (Some(rate), Some(burst)) = (NonZeroU32::new(rpm), NonZeroU32::new(burst)) else {
            return Err(RateDenied {
                retry_after: Duration::from_secs(60),
                status: RateStatus {
                    limit: rpm,
                    remaining: 0,
                    reset: Duration::from_secs(60),
                },
            });
        };
        let limiter = self.limiter(subject, rate, burst);
        let interval = Quota::per_minute(rate).replenish_interval();
        match limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateStatus {
                    limit: rpm,
                    remaining,
                    reset: interval * burst.get().saturating_sub(remaining),
                })
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.clock.now());
                Err(RateDenied {
                    retry_after,
                    status: RateStatus {
                        limit: rpm,
                        remaining: 0,
                        reset: retry_after + interval * burst.get().saturating_sub(1),
                    },
                })
            }
        }
    }

    /// Drops the limiters of subjects for which `live` says no.
    pub fn retain(&self, live: impl Fn(&Subject) -> bool) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.retain(|subject, _| live(subject));
    }

    /// How many subjects have a limiter.
    pub fn len(&self) -> usize {
        self.cells.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn limiter(&self, subject: &Subject, rate: NonZeroU32, burst: NonZeroU32) -> Arc<Limiter<C>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = (rate.get(), burst.get());
        if let Some(cell) = cells.get(subject).filter(|c| c.rate == wanted) {
            return Arc::clone(&cell.limiter);
        }
        let quota = Quota::per_minute(rate).allow_burst(burst);
        let limiter = Arc::new(
            RateLimiter::direct_with_clock(quota, self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
        );
        let cell = Cell {
            rate: wanted,
            limiter: Arc::clone(&limiter),
        };
        cells.insert(subject.clone(), cell);
        limiter
    }
}

/// `burst`, at most [`BURST`]'s bound and [`BURST_MINUTES_OF_RATE`] minutes of `rpm`.
fn bounded_burst(rpm: u32, burst: u32) -> u32 {
    let most = (i64::from(rpm) * BURST_MINUTES_OF_RATE).min(BURST.max);
    burst.min(u32::try_from(most).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::domain::Scope;

    fn subject(id: &str) -> Subject {
        (Scope::Key, Arc::from(id))
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_recovers() {
        let clock = FakeRelativeClock::default();
        let book = RateBook::with_clock(clock.clone());
        let a = subject("a");
        assert_eq!(book.check(&a, 60, 2).unwrap().remaining, 1);
        assert_eq!(book.check(&a, 60, 2).unwrap().remaining, 0);
        let denied = book.check(&a, 60, 2).unwrap_err();
        assert_eq!(denied.retry_after, Duration::from_secs(1));
        assert_eq!(denied.status.remaining, 0);
        // Another subject is not affected.
        assert!(book.check(&subject("b"), 60, 2).is_ok());
        clock.advance(Duration::from_secs(1));
        let status = book.check(&a, 60, 2).unwrap();
        assert_eq!(status.remaining, 0);
        assert_eq!(status.reset, Duration::from_secs(2));
    }

    #[test]
    fn a_burst_stored_past_its_bound_is_held_to_it_instead_of_wrapping() {
        let book = RateBook::with_clock(FakeRelativeClock::default());
        // A key created before bursts were bounded may still carry 2^32 - 1.
        let status = book.check(&subject("old"), 10, u32::MAX).unwrap();
        assert_eq!(status.remaining, 599, "an hour of 10 a minute");
        assert_eq!(status.reset, Duration::from_secs(6));
    }

    #[test]
    fn limiters_of_subjects_no_longer_live_are_dropped() {
        let book = RateBook::with_clock(FakeRelativeClock::default());
        let (a, b) = (subject("a"), subject("b"));
        assert!(book.check(&a, 1, 1).is_ok());
        assert!(book.check(&b, 1, 1).is_ok());
        book.retain(|s| *s == a);
        assert_eq!(book.len(), 1);
        assert!(
            book.check(&a, 1, 1).is_err(),
            "a live subject keeps its state"
        );
    }

    #[test]
    fn a_changed_rate_starts_a_fresh_limiter() {
        let clock = FakeRelativeClock::default();
        let book = RateBook::with_clock(clock);
        let a = subject("a");
        assert!(book.check(&a, 1, 1).is_ok());
        let denied = book.check(&a, 1, 1).unwrap_err();
        assert_eq!(denied.retry_after, Duration::from_secs(60));
        assert!(book.check(&a, 120, 10).is_ok());
    }
}
