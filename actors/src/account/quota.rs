//! The account's quota as the upstream last reported it: the rate-limit headers of every answer
//! (`x-codex-primary-*` / `x-codex-secondary-*`, spec §5.5), parsed in the service around the
//! actors (this crate has no HTTP) and carried here by the lease's report.

use std::time::SystemTime;

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
}
