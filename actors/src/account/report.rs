//! What a finished call means for the account's health: outcome + facts → [`Signal`].

use crate::account::call::{Outcome, UpstreamFacts};
use crate::ports::ProbeResult;
use crate::state::health::Signal;
use crate::state::quota::QuotaSnapshot;

/// The health signal of a finished call. `quota` is the account's latest snapshot: an exhausted
/// window's reset stands in for a usage limit that did not say when it resets.
pub fn signal_of(outcome: Outcome, facts: &UpstreamFacts, quota: Option<&QuotaSnapshot>) -> Signal {
    let code = facts.error_code.as_deref();
    let usage_limit = || Signal::UsageLimit {
        resets_at: facts
            .resets_at
            .or_else(|| quota.and_then(QuotaSnapshot::exhausted_until)),
        retry_after: facts.retry_after,
    };
    let rate_limited = || Signal::RateLimited {
        retry_after: facts.retry_after,
    };
    match outcome {
        Outcome::Completed { status: 200..=299 } => Signal::Success,
        Outcome::Completed { status: 429 } if code == Some("usage_limit_reached") => usage_limit(),
        Outcome::Completed { status: 429 } => rate_limited(),
        Outcome::Completed { status: 500..=599 } => Signal::Failure,
        // Client errors say nothing of the account; 401/403 belong to the login's state.
        Outcome::Completed { .. } => Signal::Neutral,
        Outcome::TransportFailed | Outcome::TimedOut => Signal::Failure,
        Outcome::FailedBeforeOutput => match code {
            Some("usage_limit_reached") => usage_limit(),
            Some("rate_limit_exceeded") => rate_limited(),
            Some("server_is_overloaded" | "slow_down" | "server_error") | None => Signal::Failure,
            Some(_) => Signal::Neutral,
        },
        Outcome::ClientGone | Outcome::Abandoned | Outcome::RequestAtFault => Signal::Neutral,
    }
}

/// The health signal of a probe.
pub fn signal_of_probe(result: ProbeResult) -> Signal {
    match result {
        ProbeResult::Status(200..=299) => Signal::Success,
        ProbeResult::Status(429) => Signal::RateLimited { retry_after: None },
        ProbeResult::Status(500..=599) | ProbeResult::TransportFailed | ProbeResult::TimedOut => {
            Signal::Failure
        }
        ProbeResult::Status(_) => Signal::Neutral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn facts(code: Option<&str>) -> UpstreamFacts {
        UpstreamFacts {
            error_code: code.map(str::to_owned),
            ..UpstreamFacts::default()
        }
    }

    #[test]
    fn statuses_and_stream_failures_become_signals() {
        let none = facts(None);
        let cases = [
            (Outcome::Completed { status: 200 }, &none, Signal::Success),
            (Outcome::Completed { status: 400 }, &none, Signal::Neutral),
            (Outcome::Completed { status: 401 }, &none, Signal::Neutral),
            (Outcome::Completed { status: 502 }, &none, Signal::Failure),
            (Outcome::TransportFailed, &none, Signal::Failure),
            (Outcome::TimedOut, &none, Signal::Failure),
            (Outcome::ClientGone, &none, Signal::Neutral),
            (
                Outcome::Completed { status: 429 },
                &none,
                Signal::RateLimited { retry_after: None },
            ),
            (Outcome::FailedBeforeOutput, &none, Signal::Failure),
            (Outcome::RequestAtFault, &none, Signal::Neutral),
        ];
        for (outcome, facts, expected) in cases {
            assert_eq!(signal_of(outcome, facts, None), expected, "{outcome:?}");
        }
        let overloaded = facts(Some("server_is_overloaded"));
        assert_eq!(
            signal_of(Outcome::FailedBeforeOutput, &overloaded, None),
            Signal::Failure
        );
        let context = facts(Some("context_length_exceeded"));
        assert_eq!(
            signal_of(Outcome::FailedBeforeOutput, &context, None),
            Signal::Neutral
        );
        // A failure the request carried from account to account says nothing of this one.
        assert_eq!(
            signal_of(Outcome::RequestAtFault, &overloaded, None),
            Signal::Neutral
        );
    }

    #[test]
    fn a_usage_limit_takes_its_reset_from_the_body_or_the_quota_headers() {
        let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(500);
        let mut usage = facts(Some("usage_limit_reached"));
        usage.resets_at = Some(reset);
        let expected = Signal::UsageLimit {
            resets_at: Some(reset),
            retry_after: None,
        };
        let limited = Outcome::Completed { status: 429 };
        assert_eq!(signal_of(limited, &usage, None), expected);
        usage.resets_at = None;
        let quota = QuotaSnapshot {
            primary: Some(crate::state::quota::QuotaWindow {
                used_percent: 100.0,
                window_minutes: None,
                resets_at: Some(reset),
            }),
            secondary: None,
            observed_at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(signal_of(limited, &usage, Some(&quota)), expected);
    }

    #[test]
    fn probes_close_or_reopen() {
        assert_eq!(signal_of_probe(ProbeResult::Status(200)), Signal::Success);
        assert_eq!(signal_of_probe(ProbeResult::Status(503)), Signal::Failure);
        assert_eq!(signal_of_probe(ProbeResult::TimedOut), Signal::Failure);
        assert_eq!(signal_of_probe(ProbeResult::Status(401)), Signal::Neutral);
    }
}
