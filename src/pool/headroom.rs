//! The pool's headroom, as a caller of the relay may see it: per rate-limit window, the mean of
//! what the usable accounts have used (an account whose window has reset counts as unused), the
//! longest window and the earliest reset. It says how much room the pool has without naming or
//! describing any one account. Re-read from the router at the store's sync interval by a
//! background loop, so that a request only loads it (lock-free).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::Addr;
use actix_web::rt::task::JoinHandle;
use arc_swap::ArcSwap;
use relay_actors::{AccountView, GetAccountStatuses, QuotaWindow, RouterActor};

use crate::upstream::shown_limits::{ShownLimits, ShownWindow};

/// The pool's windows as last read; cheap to clone.
#[derive(Clone, Default)]
pub struct PoolHeadroom(Arc<ArcSwap<ShownLimits>>);

impl PoolHeadroom {
    /// The windows as last read (none before the first read, or while no account has told).
    pub fn now(&self) -> ShownLimits {
        **self.0.load()
    }

    /// Starts the loop that re-reads the accounts every `interval`.
    pub fn start(router: Addr<RouterActor>, interval: Duration) -> (PoolHeadroom, JoinHandle<()>) {
        let headroom = PoolHeadroom::default();
        let shared = headroom.clone();
        let task = actix_web::rt::spawn(async move {
            loop {
                // A router that does not answer leaves the last reading in place.
                if let Ok(accounts) = router.send(GetAccountStatuses).await {
                    let read = headroom_of(&accounts, SystemTime::now());
                    shared.0.store(Arc::new(read));
                }
                actix_web::rt::time::sleep(interval).await;
            }
        });
        (headroom, task)
    }
}

/// The pool's windows at `now`, from its usable accounts' last rate-limit headers.
pub fn headroom_of(accounts: &[AccountView], now: SystemTime) -> ShownLimits {
    let usable = || {
        accounts
            .iter()
            .filter(|a| a.state.is_usable())
            .filter_map(|a| a.quota)
    };
    ShownLimits {
        primary: mean_window(usable().filter_map(|q| q.primary), now),
        secondary: mean_window(usable().filter_map(|q| q.secondary), now),
    }
}

fn mean_window(windows: impl Iterator<Item = QuotaWindow>, now: SystemTime) -> Option<ShownWindow> {
    let (mut count, mut used, mut minutes) = (0u32, 0.0f64, 0u64);
    let mut reset: Option<SystemTime> = None;
    for window in windows {
        let passed = window.resets_at.is_some_and(|at| at <= now);
        count += 1;
        used += if passed {
            0.0
        } else {
            window.used_percent.clamp(0.0, 100.0)
        };
        minutes = minutes.max(window.window_minutes.unwrap_or(0));
        if let Some(at) = window.resets_at.filter(|_| !passed) {
            reset = Some(reset.map_or(at, |r| r.min(at)));
        }
    }
    if count == 0 {
        return None;
    }
    let reset = reset.unwrap_or(now + Duration::from_secs(minutes * 60));
    Some(ShownWindow {
        used_percent: used / f64::from(count),
        window_minutes: minutes,
        reset_at: unix_secs(reset),
    })
}

fn unix_secs(at: SystemTime) -> i64 {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(used: f64, resets_in: i64, now: SystemTime) -> QuotaWindow {
        let at = match resets_in {
            s if s >= 0 => now + Duration::from_secs(s as u64),
            s => now - Duration::from_secs(s.unsigned_abs()),
        };
        QuotaWindow {
            used_percent: used,
            window_minutes: Some(300),
            resets_at: Some(at),
        }
    }

    #[test]
    fn the_pool_window_is_the_mean_use_with_the_earliest_reset() {
        let now = SystemTime::now();
        let windows = [
            window(80.0, 600, now),
            window(20.0, 60, now),
            window(90.0, -5, now),
        ];
        let shown = mean_window(windows.into_iter(), now).unwrap();
        // The third window has reset: it counts as unused.
        assert!((shown.used_percent - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(shown.window_minutes, 300);
        assert_eq!(shown.reset_at, unix_secs(now + Duration::from_secs(60)));
        assert_eq!(mean_window(std::iter::empty(), now), None);
    }
}
