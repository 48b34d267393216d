//! Failed authentications per client address: a missing, unknown or expired API key on the data
//! plane, a missing or unknown admin token on the admin plane. Each address has a budget of
//! `limits.auth_failures_per_minute` failures that refills evenly over a minute (GCRA: one failure
//! back every 60/N seconds). Past it the address is *throttled*: its failures are answered 429
//! with `Retry-After` and leave no access line each; one line says when the throttle starts, and
//! one, with the count of refusals, when the address has been quiet long enough for its budget to
//! be whole again (noticed by [`AuthFailures::sweep`], run with every re-read of the keys).
//!
//! A request that carries a valid key is served whatever its address: behind a NAT or the
//! reverse proxy the relay is meant to sit behind, every client shares one address, and one
//! client guessing keys must not lock the others out. Checking a key is one SHA-256 and a map
//! lookup in memory; what the throttle saves is the log line and the answer's work, and it tells
//! a misconfigured client to wait. Keys are 256 bits of randomness: guessing is hopeless anyway.
//!
//! An address is an IPv4 address or an IPv6 /64 (one subscriber's usual allocation: counting
//! single IPv6 addresses would let one host rotate through 2^64 of them). At most
//! `limits.auth_failures_tracked_addresses` are tracked; past that, the failures of addresses not
//! tracked share one budget until a sweep forgets the addresses whose budget is whole again.
//!
//! ```text
//!   fresh ──failure within budget──► counted (answered 401, logged)
//!   counted ──failure past budget──► throttled (429 + Retry-After, not logged; "started" line)
//!   throttled ──budget whole again (quiet for up to a minute)──► forgotten ("ended" line, count)
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use slog::{info, Logger};

use crate::settings::LimitSettings;

/// Where failures are counted: one client address as the throttle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
    /// A connection without a peer address (not TCP).
    Unknown,
    /// Every address not tracked while the table is full.
    Untracked,
}

impl Address {
    pub fn of(peer: Option<IpAddr>) -> Address {
        match peer.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Address::V4(v4),
            Some(IpAddr::V6(v6)) => Address::V6Prefix((v6.to_bits() >> 64) as u64),
            None => Address::Unknown,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::V4(v4) => write!(f, "{v4}"),
            Address::V6Prefix(prefix) => {
                let net = std::net::Ipv6Addr::from_bits(u128::from(*prefix) << 64);
                write!(f, "{net}/64")
            }
            Address::Unknown => f.write_str("unknown"),
            Address::Untracked => f.write_str("untracked addresses"),
        }
    }
}

/// What to do with one failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the address's budget: answered and logged as usual.
    Counted,
    /// Past it: 429, not logged. `started`: the first refusal of this throttle.
    Refused {
        retry_after: Duration,
        started: bool,
    },
}

/// A throttle that ended: how many failures it refused, over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub address: Address,
    pub refused: u64,
    pub lasted: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the budget is whole again (GCRA's theoretical arrival time).
    whole_at: Instant,
    /// Since when, and how many failures were refused; `None` while not throttled.
    throttled: Option<(Instant, u64)>,
}

/// The budget and every tracked address; pure, with `now` passed in.
#[derive(Debug)]
struct Ledger {
    /// A failure's share of the budget: a minute over the failures allowed per minute.
    cost: Duration,
    /// The whole budget: a minute.
    window: Duration,
    capacity: usize,
    entries: HashMap<Address, Entry>,
}

impl Ledger {
    fn failed(&mut self, address: Address, now: Instant) -> Verdict {
        let full = self.entries.len() >= self.capacity && !self.entries.contains_key(&address);
        let address = if full { Address::Untracked } else { address };
        let entry = self.entries.entry(address).or_insert(Entry {
            whole_at: now,
            throttled: None,
        });
        let next = entry.whole_at.max(now) + self.cost;
        let over = next.saturating_duration_since(now + self.window);
        if over.is_zero() {
            entry.whole_at = next;
            return Verdict::Counted;
        }
        let (_, refused) = entry.throttled.get_or_insert((now, 0));
        *refused += 1;
        Verdict::Refused {
            retry_after: over,
            started: *refused == 1,
        }
    }

    /// Forgets the addresses whose budget is whole again; returns the throttles that ended.
    fn sweep(&mut self, now: Instant) -> Vec<Ended> {
        let mut ended = Vec::new();
        self.entries.retain(|address, entry| {
            let keep = entry.whole_at > now;
            if let (false, Some((since, refused))) = (keep, entry.throttled) {
                ended.push(Ended {
                    address: *address,
                    refused,
                    lasted: now.saturating_duration_since(since),
                });
            }
            keep
        });
        if self.entries.capacity() > 2 * self.entries.len().max(64) {
            self.entries.shrink_to_fit();
        }
        ended
    }
}

/// The throttle both planes share; `None` inside while `limits.auth_failures_per_minute` is 0.
pub struct AuthFailures(Mutex<Option<Ledger>>);

impl AuthFailures {
    pub fn new(settings: &LimitSettings) -> AuthFailures {
        let failures = AuthFailures(Mutex::new(None));
        failures.reconfigure(settings);
        failures
    }

    /// Takes a new budget (a settings reload): the addresses tracked keep what they have spent,
    /// measured against the new budget from now on; a budget of 0 forgets them all.
    pub fn reconfigure(&self, settings: &LimitSettings) {
        let mut ledger = lock(&self.0);
        let per_minute = settings.auth_failures_per_minute;
        if per_minute == 0 {
            *ledger = None;
            return;
        }
        let window = Duration::from_secs(60);
        let entries = ledger.take().map(|l| l.entries).unwrap_or_default();
        *ledger = Some(Ledger {
            cost: window / per_minute,
            window,
            capacity: settings.auth_failures_tracked_addresses,
            entries,
        });
    }

    /// Counts one failed authentication of `address`.
    pub fn failed(&self, address: Address, now: Instant) -> Verdict {
        match lock(&self.0).as_mut() {
            Some(ledger) => ledger.failed(address, now),
            None => Verdict::Counted,
        }
    }

    /// Forgets the addresses whose budget is whole again, and logs each throttle that ended.
    pub fn sweep(&self, now: Instant, log: &Logger) {
        let Some(ended) = lock(&self.0).as_mut().map(|ledger| ledger.sweep(now)) else {
            return;
        };
        for Ended {
            address,
            refused,
            lasted,
        } in ended
        {
            info!(log, "client address no longer throttled for failed authentications";
                "address" => address.to_string(), "refused" => refused,
                "throttled_secs" => lasted.as_secs());
        }
    }
}

fn lock(ledger: &Mutex<Option<Ledger>>) -> std::sync::MutexGuard<'_, Option<Ledger>> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ledger(per_minute: u32, capacity: usize) -> Ledger {
        Ledger {
            cost: Duration::from_secs(60) / per_minute,
            window: Duration::from_secs(60),
            capacity,
            entries: HashMap::new(),
        }
    }

    fn v4(last: u8) -> Address {
        Address::of(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))))
    }

    #[test]
    fn a_budget_is_spent_then_refills_one_failure_at_a_time() {
        let mut ledger = ledger(3, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(ledger.failed(v4(1), t0), Verdict::Counted);
        }
        let refused = ledger.failed(v4(1), t0);
        assert_eq!(
            refused,
            Verdict::Refused {
                retry_after: Duration::from_secs(20),
                started: true
            }
        );
        let again = ledger.failed(v4(1), t0 + Duration::from_secs(5));
        assert!(
            matches!(again, Verdict::Refused { started: false, retry_after } if retry_after == Duration::from_secs(15))
        );
        // Another address has its own budget.
        assert_eq!(ledger.failed(v4(2), t0), Verdict::Counted);
        // One failure's worth comes back after 20 s.
        let later = t0 + Duration::from_secs(20);
        assert_eq!(ledger.failed(v4(1), later), Verdict::Counted);
        assert!(matches!(
            ledger.failed(v4(1), later),
            Verdict::Refused { started: false, .. }
        ));
    }

    #[test]
    fn a_throttle_ends_with_its_count_once_the_budget_is_whole_again() {
        let mut ledger = ledger(2, 10);
        let t0 = Instant::now();
        for _ in 0..7 {
            ledger.failed(v4(1), t0);
        }
        ledger.failed(v4(2), t0);
        assert!(ledger.sweep(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(ledger.entries.len(), 2, "nothing whole yet");
        let ended = ledger.sweep(t0 + Duration::from_secs(60));
        assert_eq!(
            ended,
            [Ended {
                address: v4(1),
                refused: 5,
                lasted: Duration::from_secs(60)
            }]
        );
        assert!(ledger.entries.is_empty(), "both addresses forgotten");
        assert_eq!(
            ledger.failed(v4(1), t0 + Duration::from_secs(60)),
            Verdict::Counted
        );
    }

    #[test]
    fn a_full_table_makes_new_addresses_share_one_budget() {
        let mut ledger = ledger(1, 2);
        let t0 = Instant::now();
        ledger.failed(v4(1), t0);
        ledger.failed(v4(2), t0);
        assert_eq!(ledger.failed(v4(3), t0), Verdict::Counted);
        assert!(matches!(ledger.failed(v4(4), t0), Verdict::Refused { .. }));
        // Tracked addresses keep their own budgets.
        assert!(matches!(ledger.failed(v4(1), t0), Verdict::Refused { .. }));
        assert_eq!(ledger.entries.len(), 3);
        assert!(ledger.entries.contains_key(&Address::Untracked));
    }

    #[test]
    fn an_ipv6_subscriber_is_one_address_and_mapped_ipv4_is_ipv4() {
        let ip = |text: &str| Address::of(Some(text.parse::<IpAddr>().unwrap()));
        assert_eq!(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(ip("::ffff:203.0.113.1"), v4(1));
        assert_eq!(Address::of(None).to_string(), "unknown");
    }

    #[test]
    fn a_reloaded_budget_applies_at_once_and_zero_turns_the_throttle_off() {
        let limits = crate::settings::Settings::defaults().unwrap().limits;
        let with = |per_minute| LimitSettings {
            auth_failures_per_minute: per_minute,
            ..limits.clone()
        };
        let failures = AuthFailures::new(&with(1));
        let now = Instant::now();
        assert_eq!(failures.failed(v4(1), now), Verdict::Counted);
        assert!(matches!(
            failures.failed(v4(1), now),
            Verdict::Refused { .. }
        ));
        failures.reconfigure(&with(0));
        assert_eq!(failures.failed(v4(1), now), Verdict::Counted);
        failures.reconfigure(&with(1000));
        assert_eq!(failures.failed(v4(1), now), Verdict::Counted);
    }

    #[test]
    fn a_budget_of_zero_turns_the_throttle_off() {
        let settings = crate::settings::Settings::defaults().unwrap().limits;
        let off = AuthFailures::new(&LimitSettings {
            auth_failures_per_minute: 0,
            ..settings
        });
        for _ in 0..1000 {
            assert_eq!(off.failed(v4(1), Instant::now()), Verdict::Counted);
        }
    }
}
