//! Recording one answer for the memory: its output items, taken from the
//! `response.output_item.done` events — for a stream, the ones its watcher kept as they were
//! forwarded (read once, when the response completed); for an assembled answer, from the upstream
//! chunks as they are read — each item's JSON text owned as the upstream sent it, never
//! re-encoded, and remembered once `response.completed` has come.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use relay_actors::AccountId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::memory::{Limits, OutputItem, Remembered, ResponseMemory};
use crate::upstream::event_fields::response_id;
use crate::upstream::sse::{data_of, event_type, events, EventSplitter};

/// What an answer's recording needs: where to remember it, for whom, and what was forwarded.
pub struct Recording {
    memory: ResponseMemory,
    key: Arc<str>,
    forwarded: Bytes,
    account: AccountId,
    limits: Limits,
    splitter: EventSplitter,
    /// Output items by output index.
    output: Vec<(u64, OutputItem)>,
    response_id: Option<String>,
    completed: bool,
}

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

impl Recording {
    pub fn new(
        memory: ResponseMemory,
        key: Arc<str>,
        forwarded: Bytes,
        account: AccountId,
        limits: Limits,
    ) -> Recording {
        Recording {
            memory,
            key,
            forwarded,
            account,
            limits,
            splitter: EventSplitter::default(),
            output: Vec::new(),
            response_id: None,
            completed: false,
        }
    }

    /// Reads the events `bytes` completes (a cheap clone of a shared buffer is enough).
    pub fn push(&mut self, bytes: &Bytes) {
        let whole = self.splitter.complete(bytes.clone());
        self.read(&whole);
    }

    fn read(&mut self, whole: &[u8]) {
        for (start, end, _) in events(whole) {
            self.on_event(&whole[start..end]);
        }
    }

    fn on_event(&mut self, block: &[u8]) {
        match event_type(block) {
            Some("response.output_item.done") => self.output_done(block),
            Some("response.completed") => {
                self.completed = true;
                self.response_id = data_of(block).and_then(response_id);
            }
            _ => {}
        }
    }

    fn output_done(&mut self, block: &[u8]) {
        let Some(done) =
            data_of(block).and_then(|data| serde_json::from_slice::<ItemDone>(data).ok())
        else {
            return;
        };
        let json = done.item.get();
        let id = serde_json::from_str::<ItemId>(json).ok().and_then(|i| i.id);
        let index = done.output_index.unwrap_or(self.output.len() as u64);
        let item = OutputItem {
            id,
            json: json.to_owned(),
        };
        self.output.push((index, item));
    }

    /// A streamed answer that completed: remembers its `response.output_item.done` events (as
    /// its watcher kept them) under `response_id`.
    pub fn finish_streamed(
        mut self,
        outputs: Vec<Bytes>,
        response_id: Option<String>,
        now: Instant,
    ) {
        for block in &outputs {
            self.output_done(block);
        }
        self.response_id = response_id;
        self.remember(now);
    }

    /// An assembled answer's end: remembers it if its response completed.
    pub fn finish(mut self, now: Instant) {
        if let Some(last) = self.splitter.finish() {
            self.read(&last);
        }
        if self.completed {
            self.remember(now);
        }
    }

    fn remember(mut self, now: Instant) {
        self.output.sort_by_key(|(index, _)| *index);
        let response = Remembered {
            key: self.key,
            response_id: self.response_id,
            forwarded: self.forwarded,
            output: self.output.into_iter().map(|(_, item)| item).collect(),
            account: self.account,
            at: now,
        };
        self.memory.remember(response, self.limits);
    }
}
