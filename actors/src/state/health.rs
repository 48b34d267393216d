//! The `health` part of an account's state: cooldown and circuit breaker. Pure transitions with
//! an explicit `now`, so every rule is tested without sleeping.
//!
//! ```text
//!   cooldown (quota, not failure):
//!     Ready ──429 usage_limit_reached──► Cooling { until: resets_at | reset headers, UsageLimit }
//!     Ready ──other 429────────────────► Cooling { until: Retry-After | backoff(streak), RateLimited }
//!     Cooling ──now ≥ until──► usable again; a success or a probe clears the record
//!
//!   circuit breaker (5xx, connect errors, timeouts, overload inside a stream):
//!     Closed{n} ──failure, n+1 < threshold──► Closed{n+1}
//!     Closed{n} ──failure, n+1 = threshold──► Open { until: now + backoff(openings) }
//!     Open ──now ≥ until──► half-open: one probe call goes through
//!       probe succeeds ──► Closed{0}          probe fails ──► Open { longer backoff }
//!     any success ──► Closed{0}
//! ```
//! Cooling is not a breaker failure: a capped account is healthy, only spent.

use std::time::{Duration, SystemTime};

use backoff::backoff::Backoff;
use backoff::ExponentialBackoffBuilder;

/// The thresholds and backoffs of the health rules (from the `routing.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    pub breaker_backoff_initial: Duration,
    pub breaker_backoff_max: Duration,
    /// Cooldown after a 429 that says neither when to retry nor when the limit resets.
    pub rate_limit_backoff_initial: Duration,
    pub rate_limit_backoff_max: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failure_threshold: 3,
            breaker_backoff_initial: Duration::from_secs(5),
            breaker_backoff_max: Duration::from_secs(300),
            rate_limit_backoff_initial: Duration::from_secs(10),
            rate_limit_backoff_max: Duration::from_secs(600),
        }
    }
}

/// Why an account is cooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoolingReason {
    /// The plan's usage limit is reached (`usage_limit_reached`).
    UsageLimit,
    /// Any other 429.
    RateLimited,
}

impl CoolingReason {
    pub fn name(self) -> &'static str {
        match self {
            CoolingReason::UsageLimit => "usage_limit",
            CoolingReason::RateLimited => "rate_limited",
        }
    }

    pub fn parse(name: &str) -> Option<CoolingReason> {
        match name {
            "usage_limit" => Some(CoolingReason::UsageLimit),
            "rate_limited" => Some(CoolingReason::RateLimited),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooling {
    pub until: SystemTime,
    pub reason: CoolingReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    /// Serving; `failures` consecutive failures so far.
    Closed { failures: u32 },
    /// Not serving until `until`; afterwards half-open (one probe at a time).
    Open { until: SystemTime },
}

/// What the health part allows at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    Cooling {
        until: SystemTime,
        reason: CoolingReason,
    },
    Open {
        until: SystemTime,
    },
    /// The breaker's backoff has passed: one probe call may go through.
    HalfOpen,
}

/// What an upstream call (or a probe) said about the account's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Success,
    UsageLimit {
        resets_at: Option<SystemTime>,
        retry_after: Option<Duration>,
    },
    RateLimited {
        retry_after: Option<Duration>,
    },
    Failure,
    /// Says nothing about health (client gone, a rejected request, a login problem).
    Neutral,
}

/// The health part of an account's state. Survives restarts (persisted by the actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub cooling: Option<Cooling>,
    /// Consecutive non-usage 429s: grows their backoff.
    pub rate_limit_streak: u32,
    pub breaker: Breaker,
    /// Openings since the breaker last closed: grows the breaker's backoff.
    pub openings: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            cooling: None,
            rate_limit_streak: 0,
            breaker: Breaker::Closed { failures: 0 },
            openings: 0,
        }
    }
}

impl Health {
    pub fn availability(&self, now: SystemTime) -> Availability {
        if let Some(cooling) = self.cooling.filter(|c| now < c.until) {
            return Availability::Cooling {
                until: cooling.until,
                reason: cooling.reason,
            };
        }
        match self.breaker {
            Breaker::Open { until } if now < until => Availability::Open { until },
            Breaker::Open { .. } => Availability::HalfOpen,
            Breaker::Closed { .. } => Availability::Ready,
        }
    }

    /// True when a health probe should check the account: its breaker waits for a probe, or its
    /// cooldown has run out without a call proving it serves again.
    pub fn needs_probe(&self, now: SystemTime) -> bool {
        let cooled_out = self.cooling.is_some_and(|c| now >= c.until);
        cooled_out || self.half_open(now)
    }

    /// The breaker's backoff has passed: its next call is a trial (a cooldown may still hold it).
    pub fn half_open(&self, now: SystemTime) -> bool {
        matches!(self.breaker, Breaker::Open { until } if now >= until)
    }

    /// The health after `signal`.
    pub fn apply(&self, signal: Signal, now: SystemTime, policy: &HealthPolicy) -> Health {
        let mut next = *self;
        match signal {
            Signal::Success => return Health::default(),
            Signal::Neutral => {}
            Signal::UsageLimit {
                resets_at,
                retry_after,
            } => {
                let until = resets_at
                    .filter(|at| *at > now)
                    .map(|at| at.min(after(now, MAX_WAIT)))
                    .or_else(|| retry_after.map(|d| after(now, d)))
                    .unwrap_or_else(|| after(now, self.rate_limit_delay(policy)));
                next.rate_limit_streak = self.rate_limit_streak.saturating_add(1);
                next.cooling = Some(Cooling {
                    until,
                    reason: CoolingReason::UsageLimit,
                });
            }
            Signal::RateLimited { retry_after } => {
                let delay = retry_after.unwrap_or_else(|| self.rate_limit_delay(policy));
                next.rate_limit_streak = self.rate_limit_streak.saturating_add(1);
                next.cooling = Some(Cooling {
                    until: after(now, delay),
                    reason: CoolingReason::RateLimited,
                });
            }
            Signal::Failure => next.breaker = self.after_failure(now, policy, &mut next.openings),
        }
        next
    }

    fn after_failure(&self, now: SystemTime, policy: &HealthPolicy, openings: &mut u32) -> Breaker {
        let open = |openings: &mut u32| {
            let delay = nth_backoff(
                policy.breaker_backoff_initial,
                policy.breaker_backoff_max,
                *openings,
            );
            *openings = openings.saturating_add(1);
            Breaker::Open {
                until: after(now, delay),
            }
        };
        match self.breaker {
            Breaker::Closed { failures } if failures + 1 >= policy.failure_threshold.max(1) => {
                open(openings)
            }
            Breaker::Closed { failures } => Breaker::Closed {
                failures: failures + 1,
            },
            // The half-open probe failed: open again, for longer.
            Breaker::Open { until } if now >= until => open(openings),
            // A call granted before the breaker opened: it is already open.
            open_now @ Breaker::Open { .. } => open_now,
        }
    }

    fn rate_limit_delay(&self, policy: &HealthPolicy) -> Duration {
        nth_backoff(
            policy.rate_limit_backoff_initial,
            policy.rate_limit_backoff_max,
            self.rate_limit_streak,
        )
    }
}

/// The longest wait any rule sets: what an upstream says is bounded before it becomes a time.
pub const MAX_WAIT: Duration = Duration::from_secs(8 * 24 * 3600);

/// `now + wait`, with the wait bounded (an absurd upstream value must not overflow the clock).
fn after(now: SystemTime, wait: Duration) -> SystemTime {
    now + wait.min(MAX_WAIT)
}

/// The `n`th (from 0) interval of an exponential backoff (factor 2, capped at `max`), without
/// randomness: the state machine must be deterministic; jitter belongs to retries, not cooldowns.
pub fn nth_backoff(initial: Duration, max: Duration, n: u32) -> Duration {
    let mut backoff = ExponentialBackoffBuilder::new()
        .with_initial_interval(initial)
        .with_max_interval(max.max(initial))
        .with_multiplier(2.0)
        .with_randomization_factor(0.0)
        .with_max_elapsed_time(None)
        .build();
    let mut delay = initial;
    // Past ~32 doublings every realistic cap has been reached.
    for _ in 0..=n.min(32) {
        delay = backoff.next_backoff().unwrap_or(max);
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            failure_threshold: 3,
            breaker_backoff_initial: Duration::from_secs(10),
            breaker_backoff_max: Duration::from_secs(60),
            rate_limit_backoff_initial: Duration::from_secs(5),
            rate_limit_backoff_max: Duration::from_secs(40),
        }
    }

    #[test]
    fn a_usage_limit_cools_until_its_reset_and_then_serves_again() {
        let p = policy();
        let h = Health::default().apply(
            Signal::UsageLimit {
                resets_at: Some(at(100)),
                retry_after: None,
            },
            at(0),
            &p,
        );
        assert_eq!(
            h.availability(at(99)),
            Availability::Cooling {
                until: at(100),
                reason: CoolingReason::UsageLimit
            }
        );
        assert!(!h.needs_probe(at(99)));
        assert_eq!(h.availability(at(100)), Availability::Ready);
        assert!(h.needs_probe(at(100)));
        assert_eq!(h.breaker, Breaker::Closed { failures: 0 });
        let h = h.apply(Signal::Success, at(101), &p);
        assert_eq!(h, Health::default());
    }

    #[test]
    fn a_usage_limit_without_a_reset_time_uses_retry_after_then_backoff() {
        let p = policy();
        let h = Health::default().apply(
            Signal::UsageLimit {
                resets_at: Some(at(0)), // in the past: ignored
                retry_after: Some(Duration::from_secs(30)),
            },
            at(10),
            &p,
        );
        assert_eq!(h.cooling.unwrap().until, at(40));
        let h = Health::default().apply(
            Signal::UsageLimit {
                resets_at: None,
                retry_after: None,
            },
            at(10),
            &p,
        );
        assert_eq!(h.cooling.unwrap().until, at(15));
    }

    #[test]
    fn other_429s_back_off_longer_each_time_and_never_open_the_breaker() {
        let p = policy();
        let limited = Signal::RateLimited { retry_after: None };
        let mut h = Health::default();
        let mut untils = Vec::new();
        for _ in 0..6 {
            h = h.apply(limited, at(0), &p);
            untils.push(h.cooling.unwrap().until);
        }
        assert_eq!(untils, [at(5), at(10), at(20), at(40), at(40), at(40)]);
        assert_eq!(h.breaker, Breaker::Closed { failures: 0 });
        let h = h.apply(
            Signal::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            },
            at(0),
            &p,
        );
        assert_eq!(h.cooling.unwrap().until, at(2));
        assert_eq!(h.cooling.unwrap().reason, CoolingReason::RateLimited);
    }

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_success_between_resets_the_count() {
        let p = policy();
        let mut h = Health::default();
        h = h.apply(Signal::Failure, at(0), &p);
        h = h.apply(Signal::Failure, at(0), &p);
        h = h.apply(Signal::Success, at(0), &p);
        h = h.apply(Signal::Failure, at(0), &p);
        h = h.apply(Signal::Failure, at(0), &p);
        assert_eq!(h.availability(at(0)), Availability::Ready);
        h = h.apply(Signal::Failure, at(0), &p);
        assert_eq!(h.availability(at(9)), Availability::Open { until: at(10) });
        // A late failure of a call granted before the opening changes nothing.
        assert_eq!(h.apply(Signal::Failure, at(5), &p), h);
    }

    #[test]
    fn half_open_probes_reopen_with_growing_backoff_until_one_succeeds() {
        let p = policy();
        let mut h = Health {
            breaker: Breaker::Closed { failures: 2 },
            ..Health::default()
        };
        h = h.apply(Signal::Failure, at(0), &p);
        assert_eq!(h.breaker, Breaker::Open { until: at(10) });
        assert_eq!(h.availability(at(10)), Availability::HalfOpen);
        assert!(h.needs_probe(at(10)));
        h = h.apply(Signal::Failure, at(10), &p);
        assert_eq!(h.breaker, Breaker::Open { until: at(30) });
        h = h.apply(Signal::Failure, at(30), &p);
        assert_eq!(h.breaker, Breaker::Open { until: at(70) });
        h = h.apply(Signal::Failure, at(70), &p);
        assert_eq!(
            h.breaker,
            Breaker::Open { until: at(130) },
            "capped at 60 s"
        );
        h = h.apply(Signal::Success, at(130), &p);
        assert_eq!(h.availability(at(130)), Availability::Ready);
        assert_eq!(h.openings, 0);
    }

    #[test]
    fn cooling_is_reported_before_an_open_breaker_and_neutral_signals_change_nothing() {
        let p = policy();
        let h = Health {
            cooling: Some(Cooling {
                until: at(50),
                reason: CoolingReason::UsageLimit,
            }),
            breaker: Breaker::Open { until: at(20) },
            ..Health::default()
        };
        assert!(matches!(
            h.availability(at(10)),
            Availability::Cooling { .. }
        ));
        assert_eq!(h.availability(at(50)), Availability::HalfOpen);
        assert_eq!(h.apply(Signal::Neutral, at(10), &p), h);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let d = |n| nth_backoff(Duration::from_secs(1), Duration::from_secs(5), n);
        assert_eq!(
            [d(0), d(1), d(2), d(3), d(40)],
            [1, 2, 4, 5, 5].map(Duration::from_secs)
        );
    }
}
