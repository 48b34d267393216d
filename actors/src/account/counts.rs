//! What an account's actor counts for operators: where its circuit breaker went and how its token
//! refreshes ended. Only the actor sees these events — the breaker moves inside its health rules,
//! refreshes run in its flight, away from any request — so it keeps the counts and shows them in
//! its [`AccountView`](super::messages::AccountView); the service exports them as counters at
//! scrape time. A count only grows while the actor lives: a restarted actor starts again from
//! zero, which a metrics system reads as a counter reset.

use std::time::SystemTime;

use crate::state::health::Breaker;
use crate::state::refresh::Failure;

/// Everything the actor counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountCounts {
    pub breaker: BreakerCounts,
    pub refreshes: RefreshCounts,
}

/// Moves of the circuit breaker, by where it went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerCounts {
    /// Closed → open, and half-open → open again (its trial call failed).
    pub opened: u64,
    /// Open → half-open. The breaker turns half-open by time alone; the actor sees it when the
    /// first trial call of an opening goes through, and counts it then, once per opening.
    pub half_opened: u64,
    /// Open or half-open → closed.
    pub closed: u64,
    /// The opening (its `until`) whose trial was counted: a trial that ended saying nothing of
    /// the account (its client left) is followed by another trial of the same opening.
    trial_of: Option<SystemTime>,
}

impl BreakerCounts {
    /// Counts the move from `before` to `after`, if the breaker moved.
    pub(crate) fn moved(&mut self, before: Breaker, after: Breaker) {
        match (before, after) {
            (Breaker::Closed { .. }, Breaker::Open { .. }) => self.opened += 1,
            // Only a failed trial reopens an open breaker, with a new deadline.
            (Breaker::Open { until: was }, Breaker::Open { until }) if was != until => {
                self.opened += 1;
            }
            (Breaker::Open { .. }, Breaker::Closed { .. }) => self.closed += 1,
            _ => {}
        }
    }

    /// A trial call goes through `breaker`, which is half-open.
    pub(crate) fn trial(&mut self, breaker: Breaker) {
        if let Breaker::Open { until } = breaker {
            if self.trial_of != Some(until) {
                self.trial_of = Some(until);
                self.half_opened += 1;
            }
        }
    }

    /// Each count with the name of where the breaker went: `open`, `half_open`, `closed`.
    pub fn by_target(&self) -> [(&'static str, u64); 3] {
        [
            ("open", self.opened),
            ("half_open", self.half_opened),
            ("closed", self.closed),
        ]
    }
}

/// Token refreshes, by how they ended (a refresh of an account that left the store is not
/// counted: its counts leave with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshCounts {
    /// New tokens serve: the issuer's answer was stored, or the store already held newer ones.
    pub ok: u64,
    /// No usable answer, or one the issuer may answer otherwise later: retried after a pause.
    pub failed: u64,
    /// The issuer refused the login for good: the account needs a new login.
    pub rejected: u64,
    /// The issuer rotated the tokens but the store could not take them: they serve from memory
    /// and are written again until the write lands (a rotated set without an access token to
    /// serve is a failed refresh).
    pub unsaved: u64,
}

impl RefreshCounts {
    /// Counts a refresh that failed.
    pub(crate) fn failed(&mut self, failure: &Failure) {
        match failure {
            Failure::Permanent { .. } => self.rejected += 1,
            Failure::Transient { .. } => self.failed += 1,
        }
    }

    /// Each count with the name of its result: `ok`, `failed`, `rejected`, `unsaved`.
    pub fn by_result(&self) -> [(&'static str, u64); 4] {
        [
            ("ok", self.ok),
            ("failed", self.failed),
            ("rejected", self.rejected),
            ("unsaved", self.unsaved),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn open(secs: u64) -> Breaker {
        Breaker::Open {
            until: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_breaker_counts_each_opening_reopening_and_closing() {
        let mut counts = BreakerCounts::default();
        let closed = Breaker::Closed { failures: 0 };
        counts.moved(closed, Breaker::Closed { failures: 1 });
        counts.moved(Breaker::Closed { failures: 1 }, open(10));
        counts.moved(open(10), open(10));
        counts.moved(open(10), open(30));
        counts.moved(open(30), closed);
        assert_eq!(
            counts.by_target(),
            [("open", 2), ("half_open", 0), ("closed", 1)]
        );
    }

    #[test]
    fn half_open_is_counted_once_per_opening_however_many_trials_it_takes() {
        let mut counts = BreakerCounts::default();
        counts.trial(open(10));
        counts.trial(open(10));
        counts.trial(Breaker::Closed { failures: 0 });
        counts.trial(open(30));
        assert_eq!(counts.half_opened, 2);
    }
}
