//! The account and pool gauges: cleared and filled again at every scrape from what the actors
//! and the store say then. A gauge is a sample of the present — Prometheus keeps only the value
//! it reads — so rebuilding it loses nothing, and the series of an account that left the pool are
//! gone from the next scrape instead of lingering at their last value. The clearing and the
//! filling run with no await between them, and the admin plane encodes right after, so a scrape
//! never sees a half-filled family.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use relay_actors::{PoolStatus, QuotaWindow};

use super::labels::{
    Account, AccountLabels, InfoLabels, PoolStateLabels, StateLabels, Text, WindowLabels,
};
use super::scrape::Sample;
use crate::obs::metrics::Registry;
use crate::pool::view::{unix_secs, ACCOUNT_STATES};

type Ratio = Gauge<f64, AtomicU64>;

pub(super) struct Gauges {
    info: Family<InfoLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    in_flight: Family<AccountLabels, Gauge>,
    token_expiry: Family<AccountLabels, Gauge>,
    cooldown_until: Family<AccountLabels, Gauge>,
    quota_used: Family<WindowLabels, Ratio>,
    quota_window: Family<WindowLabels, Gauge>,
    quota_reset: Family<WindowLabels, Gauge>,
    pool_accounts: Family<PoolStateLabels, Gauge>,
    pool_usable: Gauge,
    pool_bound: Gauge,
}

impl Gauges {
    pub(super) fn register(registry: &mut Registry) -> Gauges {
        let gauges = Gauges {
            info: Family::default(),
            state: Family::default(),
            in_flight: Family::default(),
            token_expiry: Family::default(),
            cooldown_until: Family::default(),
            quota_used: Family::default(),
            quota_window: Family::default(),
            quota_reset: Family::default(),
            pool_accounts: Family::default(),
            pool_usable: Gauge::default(),
            pool_bound: Gauge::default(),
        };
        let r = registry;
        r.register(
            "account_info",
            "1 for each account of the pool, with the operator's label and the plan",
            gauges.info.clone(),
        );
        r.register(
            "account_state",
            "1 for the state the account is in, 0 for the others",
            gauges.state.clone(),
        );
        r.register(
            "account_calls_in_flight",
            "Upstream calls the account has in flight",
            gauges.in_flight.clone(),
        );
        r.register(
            "account_access_token_expiry_timestamp_seconds",
            "When the account's access token expires (unix seconds)",
            gauges.token_expiry.clone(),
        );
        r.register(
            "account_cooldown_until_timestamp_seconds",
            "Until when the account cools down after a 429 (unix seconds); 0 when it is not cooling",
            gauges.cooldown_until.clone(),
        );
        r.register(
            "account_quota_used_percent",
            "Percent of the quota window used, as the upstream last reported it",
            gauges.quota_used.clone(),
        );
        r.register(
            "account_quota_window_seconds",
            "Length of the quota window, as the upstream last reported it",
            gauges.quota_window.clone(),
        );
        r.register(
            "account_quota_reset_timestamp_seconds",
            "When the quota window resets (unix seconds), as the upstream last reported it",
            gauges.quota_reset.clone(),
        );
        r.register(
            "pool_accounts",
            "Accounts of the pool, by state",
            gauges.pool_accounts.clone(),
        );
        r.register(
            "pool_usable_accounts",
            "Accounts that would serve a call now",
            gauges.pool_usable.clone(),
        );
        r.register(
            "pool_conversations_bound",
            "Conversations bound to an account",
            gauges.pool_bound.clone(),
        );
        gauges
    }

    /// Replaces every series with what `accounts` and `pool` say at `now`.
    pub(super) fn fill(&self, accounts: &[Sample], pool: &PoolStatus, now: SystemTime) {
        self.clear();
        for sample in accounts {
            self.fill_account(sample, now);
        }
        for state in ACCOUNT_STATES {
            let count = accounts.iter().filter(|s| s.state == state).count();
            let labels = PoolStateLabels { state };
            self.pool_accounts.get_or_create(&labels).set(as_i64(count));
        }
        self.pool_usable.set(as_i64(pool.usable));
        self.pool_bound.set(as_i64(pool.conversations));
    }

    fn clear(&self) {
        self.info.clear();
        self.state.clear();
        self.in_flight.clear();
        self.token_expiry.clear();
        self.cooldown_until.clear();
        self.quota_used.clear();
        self.quota_window.clear();
        self.quota_reset.clear();
        self.pool_accounts.clear();
    }

    fn fill_account(&self, sample: &Sample, now: SystemTime) {
        let account = || sample.account.clone();
        if let Some((label, plan)) = &sample.info {
            let labels = InfoLabels {
                account: account(),
                label: Text(label.clone()),
                plan: Text(plan.clone()),
            };
            self.info.get_or_create(&labels).set(1);
        }
        for state in ACCOUNT_STATES {
            let labels = StateLabels {
                account: account(),
                state,
            };
            self.state
                .get_or_create(&labels)
                .set(i64::from(sample.state == state));
        }
        let labels = AccountLabels { account: account() };
        if let Some(expires_at) = sample.token_expires_at {
            self.token_expiry.get_or_create(&labels).set(expires_at);
        }
        let Some(view) = &sample.live else {
            return;
        };
        self.in_flight
            .get_or_create(&labels)
            .set(as_i64(view.in_flight));
        let cooling = view.state.health.cooling.filter(|c| c.until > now);
        let until = cooling.map_or(0, |c| unix_secs(c.until));
        self.cooldown_until.get_or_create(&labels).set(until);
        if let Some(quota) = &view.quota {
            self.fill_window(&sample.account, "primary", quota.primary.as_ref());
            self.fill_window(&sample.account, "secondary", quota.secondary.as_ref());
        }
    }

    fn fill_window(&self, account: &Account, window: &'static str, reported: Option<&QuotaWindow>) {
        let Some(reported) = reported else {
            return;
        };
        let labels = WindowLabels {
            account: account.clone(),
            window,
        };
        self.quota_used
            .get_or_create(&labels)
            .set(reported.used_percent);
        if let Some(minutes) = reported.window_minutes {
            let seconds = i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX);
            self.quota_window.get_or_create(&labels).set(seconds);
        }
        if let Some(resets_at) = reported.resets_at {
            self.quota_reset
                .get_or_create(&labels)
                .set(unix_secs(resets_at));
        }
    }
}

fn as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
