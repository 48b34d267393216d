//! The memory itself: remembered responses, oldest first, and an index from (API key, response id)
//! to them. An entry holds what the answer already produced, unparsed: the body forwarded upstream
//! (shared with the request, a buffer of its own length) and the `response.output_item.done` events
//! (copied into one buffer of their own length, [`Events`]); its items are parsed only when a later
//! request refers to it ([`Remembered::items`]), so an answer that is never referred to costs one
//! copy of its output events and one index insertion. Item ids are not indexed: indexing them would
//! mean parsing every answer; a reference by item id instead searches the caller's own entries,
//! newest first, parsing only the events whose bytes contain the id. Bounded by time (an entry
//! older than the ttl is never returned, and goes at the next change) and by bytes (past the budget
//! the oldest entries go first), so it never grows past its budget whatever the load. Expired
//! entries go when a response is remembered and before each metrics scrape
//! ([`ResponseMemory::sweep`]), so an idle relay frees them too. The lock is held only for a
//! lookup, an insertion or a sweep, never across an await. Time is passed in (`now`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memchr::memmem;
use relay_actors::AccountId;
use serde::Deserialize;
use serde_json::value::RawValue;
use zeroize::Zeroize;

use super::metrics::MemoryMetrics;

/// What an entry costs besides the bytes it holds: its structs and its index entries.
const ENTRY_OVERHEAD: usize = 256;

/// The bounds in force (`responses.memory.ttl_mins`, `.max_bytes`), read per call so that a
/// reload applies at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub ttl: Duration,
    pub max_bytes: usize,
}

/// One output item as the relay returned it: an owned copy of its JSON text, made when a
/// request refers to it and zeroized when dropped.
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
    /// The `response.output_item.done` events as forwarded, in stream order, never parsed unless
    /// referred to.
    pub output: Events,
    /// The account that wrote the output (encrypted reasoning is readable only there).
    pub account: AccountId,
    pub at: Instant,
}

impl Drop for Remembered {
    /// Overwrites the forwarded body with zeros when the memory is the last to hold it (a body
    /// still shared, e.g. by a request in flight, is left to its other holder); the events wipe
    /// themselves.
    fn drop(&mut self) {
        if let Ok(mut unique) = std::mem::take(&mut self.forwarded).try_into_mut() {
            unique.as_mut().zeroize();
        }
    }
}

/// The `response.output_item.done` events kept of one answer, in stream order, copied into one
/// buffer of their own length. They arrive as slices of the answer's chunks (an upstream read,
/// up to tens of KB, of which an event is a part); an entry holding the slices held the whole
/// chunks while the budget counted only the slices — under the load benchmark the memory's
/// real size was about six times `responses.memory.max_bytes`. Copied, what is held is what is
/// counted ([`Events::held`]).
#[derive(Default)]
pub struct Events {
    bytes: Vec<u8>,
    /// Where each event ends in `bytes`.
    ends: Vec<usize>,
}

impl Events {
    /// A copy of `events`, in their order, in one allocation of their total length.
    pub fn copied(events: &[Bytes]) -> Events {
        let mut bytes = Vec::with_capacity(events.iter().map(Bytes::len).sum());
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            bytes.extend_from_slice(event);
            ends.push(bytes.len());
        }
        Events { bytes, ends }
    }

    /// The events, in stream order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.bytes[start..end])
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The memory the events hold.
    pub fn held(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

impl Drop for Events {
    /// Answers are content: overwritten with zeros before they are freed.
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// What is read of a `response.output_item.done` event's data.
#[derive(Deserialize)]
struct ItemDone<'a> {
    output_index: Option<u64>,
    #[serde(borrow)]
    item: &'a RawValue,
}

#[derive(Deserialize)]
struct ItemId {
    id: Option<String>,
}

impl Remembered {
    /// The bytes it holds: the body (a buffer of its own length, `intake`), the events and its
    /// structs.
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD + self.forwarded.len() + self.output.held()
    }

    /// The output items in output order, parsed from the kept events now (a request refers to
    /// this response); a malformed event is skipped.
    pub fn items(&self) -> Vec<OutputItem> {
        let mut items: Vec<(u64, OutputItem)> = Vec::with_capacity(self.output.len());
        for event in self.output.iter() {
            if let Some(item) = item_of(event, items.len()) {
                items.push(item);
            }
        }
        // Stable: events without an index keep their stream order.
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, item)| item).collect()
    }

    /// The output item `id`, if one of the kept events holds it: only events whose bytes
    /// contain the id are parsed.
    fn item_with_id(&self, id: &str) -> Option<OutputItem> {
        let finder = memmem::Finder::new(id.as_bytes());
        self.output
            .iter()
            .filter(|event| finder.find(event).is_some())
            .filter_map(|event| item_of(event, 0))
            .map(|(_, item)| item)
            .find(|item| item.id.as_deref() == Some(id))
    }

    fn expired(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.at) >= ttl
    }
}

#[derive(Default)]
struct Entries {
    /// Oldest first; the entry at position `i` has sequence number `first_seq + i`.
    queue: VecDeque<(Arc<Remembered>, usize)>,
    first_seq: u64,
    /// `key id \0 response id` → the entry's sequence number.
    index: HashMap<String, u64>,
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

/// The output item of one kept event and its output index (`fallback` when it has none).
fn item_of(event: &[u8], fallback: usize) -> Option<(u64, OutputItem)> {
    let done = serde_json::from_slice::<ItemDone>(crate::upstream::sse::data_of(event)?).ok()?;
    let json = done.item.get();
    let id = serde_json::from_str::<ItemId>(json).ok().and_then(|i| i.id);
    let index = done.output_index.unwrap_or(fallback as u64);
    let item = OutputItem {
        id,
        json: json.to_owned(),
    };
    Some((index, item))
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
        let entries = self.lock();
        let seq = *entries.index.get(&index_key(key, id))?;
        let at = usize::try_from(seq.checked_sub(entries.first_seq)?).ok()?;
        let (entry, _) = entries.queue.get(at)?;
        // The key is part of the index key; checked again so that no path can cross keys.
        (entry.key.as_ref() == key && !entry.expired(now, ttl)).then(|| Arc::clone(entry))
    }

    /// The output item `id` served to `key` (from the newest response that holds it) and that
    /// response, unless forgotten or expired. Searched, not indexed (see the module's note):
    /// the lock is held only to take the key's live entries, the search runs outside it.
    pub fn item(
        &self,
        key: &str,
        id: &str,
        now: Instant,
        ttl: Duration,
    ) -> Option<(Arc<Remembered>, OutputItem)> {
        self.live_entries(key, now, ttl)
            .into_iter()
            .find_map(|entry| entry.item_with_id(id).map(|item| (entry, item)))
    }

    /// The account that wrote the newest response holding the first of `ids` (in their order)
    /// this memory holds for `key`. The key's entries are taken once for all the ids.
    pub fn writer_of(
        &self,
        key: &str,
        ids: &[String],
        now: Instant,
        ttl: Duration,
    ) -> Option<AccountId> {
        let entries = self.live_entries(key, now, ttl);
        ids.iter().find_map(|id| {
            entries
                .iter()
                .find(|entry| entry.item_with_id(id).is_some())
                .map(|entry| entry.account.clone())
        })
    }

    /// `key`'s entries that have not expired, newest first: the lock is held only to take them.
    fn live_entries(&self, key: &str, now: Instant, ttl: Duration) -> Vec<Arc<Remembered>> {
        let entries = self.lock();
        entries
            .queue
            .iter()
            .rev()
            .map(|(entry, _)| entry)
            .filter(|entry| entry.key.as_ref() == key && !entry.expired(now, ttl))
            .cloned()
            .collect()
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
            self.index.insert(index_key(&entry.key, id), seq);
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
        if let Some(id) = &entry.response_id {
            let key = index_key(&entry.key, id);
            // A later response may have taken the id over: only this entry's own slot goes.
            if self.index.get(&key) == Some(&seq) {
                self.index.remove(&key);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
