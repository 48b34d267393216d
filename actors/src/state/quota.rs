//! The account's quota as the upstream last reported it: the rate-limit headers of every answer
//! (`x-codex-primary-*` / `x-codex-secondary-*`: the used percent, length and reset time of the
//! short and the long window), parsed in the service around the actors (this crate has no HTTP)
//! and carried here by the lease's report.

use std::time::{Duration, SystemTime};

/// A snapshot that says nothing new is still saved this often, so a restart finds a recent one.
const RESAVE_AFTER: Duration = Duration::from_secs(60);

/// Reset times computed from "resets in N seconds" drift by a second or so between answers;
/// closer than this they are the same reset.
const RESET_TOLERANCE: Duration = Duration::from_secs(30);

/// One rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaWindow {
    /// Percent of the window used (0–100; may exceed 100 when over the limit).
    pub used_percent: f64,
    pub window_minutes: Option<u64>,
    pub resets_at: Option<SystemTime>,
}

/// The primary (short) and secondary (long) windows, as seen at `observed_at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSnapshot {
    pub primary: Option<QuotaWindow>,
    pub secondary: Option<QuotaWindow>,
    pub observed_at: SystemTime,
}

impl QuotaSnapshot {
    /// Percent left in the tightest window, 0–100. Unknown windows do not constrain.
    pub fn remaining_percent(&self) -> f64 {
        let used = [self.primary, self.secondary]
            .iter()
            .flatten()
            .map(|w| w.used_percent)
            .fold(0.0_f64, f64::max);
        (100.0 - used).clamp(0.0, 100.0)
    }

    /// Whether this snapshot, seen after `saved` was stored, is worth storing: a window's use,
    /// size or reset changed, or `saved` is getting old. Every answer carries the headers; an
    /// account under load would otherwise write its row on every call.
    pub fn worth_saving_over(&self, saved: &QuotaSnapshot) -> bool {
        let window_changed = |now: Option<QuotaWindow>, then: Option<QuotaWindow>| match (now, then)
        {
            (Some(now), Some(then)) => {
                now.used_percent != then.used_percent
                    || now.window_minutes != then.window_minutes
                    || !close(now.resets_at, then.resets_at)
            }
            (None, None) => false,
            _ => true,
        };
        let age = self
            .observed_at
            .duration_since(saved.observed_at)
            .unwrap_or_default();
        age >= RESAVE_AFTER
            || window_changed(self.primary, saved.primary)
            || window_changed(self.secondary, saved.secondary)
    }

    /// When the last exhausted window resets: what a usage limit without `resets_at` waits for.
    pub fn exhausted_until(&self) -> Option<SystemTime> {
        [self.primary, self.secondary]
            .iter()
            .flatten()
            .filter(|w| w.used_percent >= 100.0)
            .filter_map(|w| w.resets_at)
            .max()
    }
}

fn close(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            let gap = a.duration_since(b).or_else(|_| b.duration_since(a));
            gap.is_ok_and(|gap| gap < RESET_TOLERANCE)
        }
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window(used: f64, reset: u64) -> Option<QuotaWindow> {
        Some(QuotaWindow {
            used_percent: used,
            window_minutes: Some(300),
            resets_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(reset)),
        })
    }

    #[test]
    fn the_tightest_window_decides_what_remains() {
        let snapshot = QuotaSnapshot {
            primary: window(12.5, 10),
            secondary: window(40.0, 20),
            observed_at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(snapshot.remaining_percent(), 60.0);
        assert_eq!(snapshot.exhausted_until(), None);
        let spent = QuotaSnapshot {
            primary: window(100.0, 10),
            secondary: window(130.0, 20),
            ..snapshot
        };
        assert_eq!(spent.remaining_percent(), 0.0);
        assert_eq!(
            spent.exhausted_until(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(20))
        );
        let unknown = QuotaSnapshot {
            primary: None,
            secondary: None,
            ..snapshot
        };
        assert_eq!(unknown.remaining_percent(), 100.0);
    }

    #[test]
    fn only_a_snapshot_that_says_something_new_is_worth_saving() {
        let saved = QuotaSnapshot {
            primary: window(12.5, 1000),
            secondary: None,
            observed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(500),
        };
        let later = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(500 + secs);
        let same = QuotaSnapshot {
            primary: window(12.5, 1001),
            observed_at: later(5),
            ..saved
        };
        assert!(!same.worth_saving_over(&saved));
        let used_more = QuotaSnapshot {
            primary: window(13.0, 1001),
            ..same
        };
        assert!(used_more.worth_saving_over(&saved));
        let new_reset = QuotaSnapshot {
            primary: window(12.5, 5000),
            ..same
        };
        assert!(new_reset.worth_saving_over(&saved));
        let second_window = QuotaSnapshot {
            secondary: window(1.0, 9000),
            ..same
        };
        assert!(second_window.worth_saving_over(&saved));
        let old = QuotaSnapshot {
            observed_at: later(60),
            ..same
        };
        assert!(old.worth_saving_over(&saved));
    }
}
