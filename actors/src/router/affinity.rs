//! Conversation affinity: a bounded table from a conversation key to the account that holds its
//! prompt cache and encrypted reasoning. Entries expire after `ttl` without use; when the table is
//! full the least recently used entry is forgotten. Time is passed in (`now`), never read here.
//!
//! The rule the router applies with it: a bound conversation stays on its account as long as
//! that account can serve; it moves only when the account is unusable (and the move is reported
//! as [`Placement::Moved`](crate::account::lease::Placement::Moved), logged and counted). A recovering account never takes conversations
//! back: nothing rebinds to it unless the account they moved to becomes unusable in turn.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use crate::types::AccountId;

struct Entry {
    account: AccountId,
    last_used: SystemTime,
    stamp: u64,
}

/// Keys are kept as 64-bit hashes: bounded memory whatever the clients send, and no client
/// identifier kept in the clear.
pub struct AffinityTable {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<u64, Entry>,
    /// Use order: stamp → key; the first entry is the least recently used.
    order: BTreeMap<u64, u64>,
    next_stamp: u64,
}

impl AffinityTable {
    pub fn new(ttl: Duration, capacity: usize) -> AffinityTable {
        AffinityTable {
            ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The account `key` is bound to, if the binding has not expired.
    pub fn get(&self, key: &str, now: SystemTime) -> Option<&AccountId> {
        let entry = self.entries.get(&hash(key))?;
        (!self.expired(entry, now)).then_some(&entry.account)
    }

    /// Binds `key` to `account` (or refreshes the binding) as used at `now`.
    pub fn bind(&mut self, key: &str, account: AccountId, now: SystemTime) {
        let key = hash(key);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(old) = self.entries.insert(
            key,
            Entry {
                account,
                last_used: now,
                stamp,
            },
        ) {
            self.order.remove(&old.stamp);
        }
        self.order.insert(stamp, key);
        self.evict(now);
    }

    /// Forgets expired entries, then the least recently used ones beyond the capacity.
    fn evict(&mut self, now: SystemTime) {
        while let Some((&stamp, &key)) = self.order.first_key_value() {
            let over = self.entries.len() > self.capacity;
            let expired = self.entries.get(&key).is_none_or(|e| self.expired(e, now));
            if !over && !expired {
                break;
            }
            self.order.remove(&stamp);
            self.entries.remove(&key);
        }
    }

    fn expired(&self, entry: &Entry, now: SystemTime) -> bool {
        now.duration_since(entry.last_used)
            .is_ok_and(|idle| idle >= self.ttl)
    }
}

fn hash(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn id(s: &str) -> AccountId {
        AccountId::from(s)
    }

    #[test]
    fn a_binding_lasts_while_used_and_expires_after_the_ttl_idle() {
        let mut table = AffinityTable::new(Duration::from_secs(10), 100);
        table.bind("conv", id("a"), at(0));
        assert_eq!(table.get("conv", at(9)), Some(&id("a")));
        table.bind("conv", id("a"), at(9));
        assert_eq!(table.get("conv", at(18)), Some(&id("a")));
        assert_eq!(table.get("conv", at(19)), None);
        assert_eq!(table.get("other", at(1)), None);
    }

    #[test]
    fn the_least_recently_used_binding_goes_first_when_full() {
        let mut table = AffinityTable::new(Duration::from_secs(100), 2);
        table.bind("one", id("a"), at(0));
        table.bind("two", id("b"), at(1));
        table.bind("one", id("a"), at(2)); // "one" is now the most recent
        table.bind("three", id("c"), at(3));
        assert_eq!(table.len(), 2);
        assert_eq!(table.get("two", at(3)), None);
        assert_eq!(table.get("one", at(3)), Some(&id("a")));
        assert_eq!(table.get("three", at(3)), Some(&id("c")));
    }

    #[test]
    fn expired_bindings_are_dropped_when_the_table_changes() {
        let mut table = AffinityTable::new(Duration::from_secs(5), 100);
        table.bind("old", id("a"), at(0));
        table.bind("new", id("b"), at(10));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn rebinding_moves_the_conversation() {
        let mut table = AffinityTable::new(Duration::from_secs(5), 100);
        table.bind("conv", id("a"), at(0));
        table.bind("conv", id("b"), at(1));
        assert_eq!(table.get("conv", at(2)), Some(&id("b")));
        assert_eq!(table.len(), 1);
    }
}
