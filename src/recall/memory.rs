//! The memory itself: remembered responses, oldest first, and an index from (API key, id) to
//! them. Bounded by time (an entry older than the ttl is never returned, and goes at the next
//! change) and by bytes (past the budget the oldest entries go first), so it never grows past
//! its budget whatever the load. Expired entries go when a response is remembered and before
//! each metrics scrape ([`ResponseMemory::sweep`]), so an idle relay frees them too. The lock is
//! held only for a lookup, an insertion or a sweep, never across an await. Time is passed in
//! (`now`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_actors::AccountId;
use zeroize::Zeroize;

use super::metrics::MemoryMetrics;

/// What an entry costs besides the bytes it holds: its structs and its index entries.
const ENTRY_OVERHEAD: usize = 256;
/// What each output item costs besides its JSON and id.
const ITEM_OVERHEAD: usize = 96;

/// The bounds in force (`responses.memory.ttl_mins`, `.max_bytes`), read per call so that a
/// reload applies at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub ttl: Duration,
    pub max_bytes: usize,
}

/// One output item as the relay returned it: its JSON text, zeroized when forgotten.
pub struct OutputItem {
    pub id: Option<String>,
    pub json: String,
}

impl Drop for OutputItem {
    fn drop(&mut self) {
        self.json.zeroize();
    }
}

/// One remembered response.
pub struct Remembered {
    /// The API key (its id) the response was served to: only that key reaches it.
    pub key: Arc<str>,
    pub response_id: Option<String>,
    /// The body the relay forwarded upstream (its `input` is the conversation so far), shared
    /// with the request rather than copied.
    pub forwarded: Bytes,
    /// The output items, in output order.
    pub output: Vec<OutputItem>,
    /// The account that wrote the output (encrypted reasoning is readable only there).
    pub account: AccountId,
    pub at: Instant,
}

impl Remembered {
    fn bytes(&self) -> usize {
        let items: usize = self
            .output
            .iter()
            .map(|item| item.json.len() + item.id.as_ref().map_or(0, String::len) + ITEM_OVERHEAD)
            .sum();
        ENTRY_OVERHEAD + self.forwarded.len() + items
    }

    fn expired(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.at) >= ttl
    }
}

/// Where an id leads: an entry (by its sequence number) and, for an item, its place.
#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    item: Option<usize>,
}

#[derive(Default)]
struct Entries {
    /// Oldest first; the entry at position `i` has sequence number `first_seq + i`.
    queue: VecDeque<(Arc<Remembered>, usize)>,
    first_seq: u64,
    /// `key id \0 response or item id` → where it is.
    index: HashMap<String, Slot>,
    bytes: usize,
    /// The limits of the last insertion, which a sweep applies.
    limits: Option<Limits>,
}

/// The responses the relay remembers; cheap to clone (one memory per relay).
#[derive(Clone, Default)]
pub struct ResponseMemory {
    entries: Arc<Mutex<Entries>>,
    metrics: MemoryMetrics,
}

fn index_key(key: &str, id: &str) -> String {
    let mut text = String::with_capacity(key.len() + id.len() + 1);
    text.push_str(key);
    text.push('\0');
    text.push_str(id);
    text
}

impl ResponseMemory {
    pub fn new(metrics: MemoryMetrics) -> ResponseMemory {
        ResponseMemory {
            entries: Arc::default(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `response`, then forgets what is past the limits (the oldest first). A response
    /// larger than the whole budget is not remembered.
    pub fn remember(&self, response: Remembered, limits: Limits) {
        let size = response.bytes();
        let now = response.at;
        let mut entries = self.lock();
        if size <= limits.max_bytes {
            entries.push(Arc::new(response), size);
        }
        entries.limits = Some(limits);
        entries.forget(now, limits);
        self.metrics.set(entries.bytes, entries.queue.len());
    }

    /// Forgets what is past the limits last in force (expired entries, mostly).
    pub fn sweep(&self, now: Instant) {
        let mut entries = self.lock();
        if let Some(limits) = entries.limits {
            entries.forget(now, limits);
        }
        self.metrics.set(entries.bytes, entries.queue.len());
    }

    /// The response `id` served to `key`, unless forgotten or expired.
    pub fn response(
        &self,
        key: &str,
        id: &str,
        now: Instant,
        ttl: Duration,
    ) -> Option<Arc<Remembered>> {
        match self.find(key, id, now, ttl)? {
            (entry, None) => Some(entry),
            (_, Some(_)) => None,
        }
    }

    /// The output item `id` served to `key` and its place in its response's output.
    pub fn item(
        &self,
        key: &str,
        id: &str,
        now: Instant,
        ttl: Duration,
    ) -> Option<(Arc<Remembered>, usize)> {
        match self.find(key, id, now, ttl)? {
            (entry, Some(item)) => Some((entry, item)),
            (_, None) => None,
        }
    }

    fn find(
        &self,
        key: &str,
        id: &str,
        now: Instant,
        ttl: Duration,
    ) -> Option<(Arc<Remembered>, Option<usize>)> {
        let entries = self.lock();
        let slot = *entries.index.get(&index_key(key, id))?;
        let at = usize::try_from(slot.seq.checked_sub(entries.first_seq)?).ok()?;
        let (entry, _) = entries.queue.get(at)?;
        // The key is part of the index key; checked again so that no path can cross keys.
        (entry.key.as_ref() == key && !entry.expired(now, ttl))
            .then(|| (Arc::clone(entry), slot.item))
    }

    /// Bytes and responses held now.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.bytes, entries.queue.len())
    }
}

impl Entries {
    fn push(&mut self, entry: Arc<Remembered>, size: usize) {
        let seq = self.first_seq + self.queue.len() as u64;
        if let Some(id) = &entry.response_id {
            self.index
                .insert(index_key(&entry.key, id), Slot { seq, item: None });
        }
        for (at, item) in entry.output.iter().enumerate() {
            if let Some(id) = &item.id {
                let slot = Slot {
                    seq,
                    item: Some(at),
                };
                self.index.insert(index_key(&entry.key, id), slot);
            }
        }
        self.bytes += size;
        self.queue.push_back((entry, size));
    }

    /// Drops expired entries and, past the budget, the oldest.
    fn forget(&mut self, now: Instant, limits: Limits) {
        while let Some((oldest, _)) = self.queue.front() {
            if self.bytes <= limits.max_bytes && !oldest.expired(now, limits.ttl) {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((entry, size)) = self.queue.pop_front() else {
            return;
        };
        let seq = self.first_seq;
        self.first_seq += 1;
        self.bytes -= size;
        let ids = entry
            .response_id
            .iter()
            .chain(entry.output.iter().filter_map(|i| i.id.as_ref()));
        for id in ids {
            let key = index_key(&entry.key, id);
            // A later response may have taken the id over: only this entry's own slot goes.
            if self.index.get(&key).is_some_and(|slot| slot.seq == seq) {
                self.index.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
