//! The account and pool families (`codex_relay_account_*`, `codex_relay_pool_*`), from two
//! sources:
//! - what the data plane sees of each attempt — an upstream call's status, a failover's reason —
//!   counted where the handler reads the request's record of attempts, an atomic add per
//!   attempt ([`PoolMetrics::count_call`], [`PoolMetrics::count_failover`]; `by_account.rs`);
//! - what the actors and the store keep — each account's state, calls in flight, token expiry,
//!   cooldown and last quota snapshot (gauges, `gauges.rs`), its breaker moves and refreshes and
//!   the router's conversation moves (counters the actors count, `actor_counts.rs`) — read once
//!   per scrape, right before encoding (`scrape.rs`), never on the request path.
//!
//! An account is named by its relay id, never by an email; `account_info` joins the id to the
//! operator's label and the plan.

mod actor_counts;
mod by_account;
mod gauges;
mod labels;
mod scrape;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use actix::Addr;
use futures_util::future::LocalBoxFuture;
use relay_actors::{AccountId, RouterActor};
use slog::Logger;

use self::actor_counts::ActorCounts;
use self::by_account::AccountCounters;
use self::gauges::Gauges;
pub use self::labels::CallStatus;
use self::labels::{Account, CallLabels, FailoverLabels};
use self::scrape::{Reading, Sources};
use crate::obs::metrics::{BeforeEncoding, Registry};
use crate::store::Store;

/// The account and pool families; cheap to clone. The data plane counts attempts through it, the
/// admin plane runs it before each encoding.
#[derive(Clone)]
pub struct PoolMetrics {
    calls: AccountCounters<CallLabels>,
    failovers: AccountCounters<FailoverLabels>,
    scrape: Arc<Scrape>,
}

/// What a scrape reads from and fills.
struct Scrape {
    sources: Sources,
    gauges: Gauges,
    counts: Arc<ActorCounts>,
}

impl PoolMetrics {
    /// Registers the families on `registry`; scrapes read the pool from `router` and `store`.
    pub fn register(
        registry: &mut Registry,
        router: Addr<RouterActor>,
        store: Store,
        log: Logger,
    ) -> PoolMetrics {
        let calls = AccountCounters::register(
            registry,
            "account_upstream_calls",
            "Upstream calls of the account, by the HTTP status answered (or transport, timeout)",
        );
        let failovers = AccountCounters::register(
            registry,
            "account_failovers",
            "Requests that left the account for another one, by reason",
        );
        let counts = Arc::new(ActorCounts::default());
        registry.register_collector(Box::new(Arc::clone(&counts)));
        let scrape = Scrape {
            sources: Sources { router, store, log },
            gauges: Gauges::register(registry),
            counts,
        };
        PoolMetrics {
            calls,
            failovers,
            scrape: Arc::new(scrape),
        }
    }

    /// One upstream call of `account` ended with `status`.
    pub fn count_call(&self, account: &AccountId, status: CallStatus) {
        self.calls.inc(&CallLabels {
            account: Account(account.clone()),
            status,
        });
    }

    /// A request left `account` for another one; `reason` is a bounded name.
    pub fn count_failover(&self, account: &AccountId, reason: &'static str) {
        self.failovers.inc(&FailoverLabels {
            account: Account(account.clone()),
            reason,
        });
    }

    /// Fills the families from what was read, and drops the series of accounts gone from it.
    fn apply(&self, reading: Reading) {
        let Reading { accounts, pool } = reading;
        let now = std::time::SystemTime::now();
        self.scrape.gauges.fill(&accounts, &pool, now);
        let present: HashSet<&AccountId> = accounts.iter().map(|s| &s.account.0).collect();
        self.calls.retain(|account| present.contains(account));
        self.failovers.retain(|account| present.contains(account));
        let counts = accounts
            .iter()
            .filter_map(|s| Some((s.account.clone(), s.live.as_ref()?.counts)))
            .collect();
        self.scrape.counts.store(counts, pool.affinity_moves);
    }
}

/// Before each scrape: the pool as the router and the store see it now.
impl BeforeEncoding for PoolMetrics {
    fn refresh(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(reading) = self.scrape.sources.read().await {
                self.apply(reading);
            }
        })
    }
}
