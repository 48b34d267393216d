//! The counters only the actors keep — each account's breaker moves and refreshes, the router's
//! count of conversations moved — exported as counters whose value is the actor's own count: the
//! scrape stores the counts it read, and this collector encodes them from there. The relay adds
//! to nothing here; an account that left the pool is simply not in the next snapshot.

use std::sync::{Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use relay_actors::AccountCounts;

use super::labels::{Account, RefreshLabels, TransitionLabels};

/// The counts of the last scrape; nothing before the first.
#[derive(Debug, Default)]
pub(super) struct ActorCounts(Mutex<Option<Snapshot>>);

#[derive(Debug)]
struct Snapshot {
    accounts: Vec<(Account, AccountCounts)>,
    /// The router's count of bound conversations moved off their account.
    conversations_moved: u64,
}

impl ActorCounts {
    /// Keeps what a scrape read, for the encoding that follows it.
    pub(super) fn store(&self, accounts: Vec<(Account, AccountCounts)>, conversations_moved: u64) {
        *self.snapshot() = Some(Snapshot {
            accounts,
            conversations_moved,
        });
    }

    fn snapshot(&self) -> MutexGuard<'_, Option<Snapshot>> {
        // The snapshot is replaced whole: a panic elsewhere cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Collector for ActorCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot();
        let Some(snapshot) = snapshot.as_ref() else {
            return Ok(());
        };
        let accounts = &snapshot.accounts;
        counter_family(
            &mut encoder,
            "account_breaker_transitions",
            "Moves of the account's circuit breaker, by where it went (open, half_open, closed), since its actor started.",
            per_account(accounts, |c| c.breaker.by_target(), |account, to| {
                TransitionLabels { account, to }
            }),
        )?;
        counter_family(
            &mut encoder,
            "account_refreshes",
            "Token refreshes of the account, by result (ok, failed, rejected, unsaved), since its actor started.",
            per_account(accounts, |c| c.refreshes.by_result(), |account, result| {
                RefreshLabels { account, result }
            }),
        )?;
        let moved = ConstCounter::new(snapshot.conversations_moved);
        moved.encode(encoder.encode_descriptor(
            "pool_conversations_moved",
            "Bound conversations moved to another account because theirs could not serve, since the relay started.",
            None,
            MetricType::Counter,
        )?)
    }
}

/// Every account's named counts (`counts`), each under the labels `labels` makes of the
/// account and the count's name.
fn per_account<'a, L: 'a, const N: usize>(
    accounts: &'a [(Account, AccountCounts)],
    counts: fn(&AccountCounts) -> [(&'static str, u64); N],
    labels: fn(Account, &'static str) -> L,
) -> impl Iterator<Item = (L, u64)> + 'a {
    accounts.iter().flat_map(move |(account, of_account)| {
        let named = counts(of_account).into_iter();
        named.map(move |(name, n)| (labels(account.clone(), name), n))
    })
}

/// One counter family from `series`; nothing at all when it has none.
fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, count) in series {
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
