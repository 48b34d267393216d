//! Counters the data plane adds to whose series each belong to one account. A family keeps a
//! series until it is removed and cannot list them, so each label set is noted once, when its
//! series is created (an account's first call with a new status: rare), and the series of an
//! account that left the pool are removed at the next scrape ([`AccountCounters::retain`]) —
//! a deleted account leaves no series behind for Prometheus to keep reading.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use relay_actors::AccountId;

use super::labels::OfAccount;
use crate::obs::metrics::Registry;

/// A counter family keyed by labels that name an account.
pub(super) struct AccountCounters<L> {
    family: Family<L, Counter>,
    /// Every label set with a series: what [`AccountCounters::retain`] walks.
    created: Arc<Mutex<Vec<L>>>,
}

impl<L> Clone for AccountCounters<L> {
    fn clone(&self) -> Self {
        AccountCounters {
            family: self.family.clone(),
            created: Arc::clone(&self.created),
        }
    }
}

impl<L> AccountCounters<L>
where
    L: OfAccount + EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static,
{
    /// Registers the family as `name` (a counter: the encoding adds `_total`).
    pub(super) fn register(registry: &mut Registry, name: &str, help: &str) -> Self {
        let counters = AccountCounters {
            family: Family::default(),
            created: Arc::default(),
        };
        registry.register(name, help, counters.family.clone());
        counters
    }

    /// Adds one to the series of `labels`: an atomic add once it exists.
    pub(super) fn inc(&self, labels: &L) {
        if let Some(counter) = self.family.get(labels) {
            counter.inc();
            return;
        }
        // Created under the note's lock, so a scrape removing the account's series cannot
        // slip between the note and the series.
        let mut created = self.created();
        if self.family.get(labels).is_none() {
            created.push(labels.clone());
        }
        self.family.get_or_create(labels).inc();
    }

    /// Removes the series of every account `keep` refuses.
    pub(super) fn retain(&self, keep: impl Fn(&AccountId) -> bool) {
        self.created().retain(|labels| {
            let kept = keep(labels.account());
            if !kept {
                self.family.remove(labels);
            }
            kept
        });
    }

    fn created(&self) -> MutexGuard<'_, Vec<L>> {
        // A panic elsewhere cannot leave the list half-written: it only grows or shrinks whole.
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
