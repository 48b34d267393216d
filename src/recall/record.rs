//! Recording one answer for the memory, lazily: its `response.output_item.done` events are kept
//! as the shared bytes the answer already produced — for a stream, the slices its watcher kept
//! as they were forwarded; for an assembled answer, slices of the upstream chunks as they are
//! read — and nothing in them is parsed or copied until a later request refers to the response
//! ([`super::memory::Remembered::items`]). Only the response id is indexed here, and the answer
//! is remembered once `response.completed` has come.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use relay_actors::AccountId;

use super::memory::{Limits, Remembered, ResponseMemory};
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
    /// The `response.output_item.done` events, whole and unparsed, in stream order.
    output: Vec<Bytes>,
    response_id: Option<String>,
    completed: bool,
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

    fn read(&mut self, whole: &Bytes) {
        for (start, end, _) in events(whole) {
            let block = &whole[start..end];
            match event_type(block) {
                // A slice of the chunk: shared, not copied.
                Some("response.output_item.done") => self.output.push(whole.slice(start..end)),
                Some("response.completed") => {
                    self.completed = true;
                    self.response_id = data_of(block).and_then(response_id);
                }
                _ => {}
            }
        }
    }

    /// A streamed answer that completed: remembers its `response.output_item.done` events (as
    /// its watcher kept them) under `response_id`.
    pub fn finish_streamed(
        mut self,
        outputs: Vec<Bytes>,
        response_id: Option<String>,
        now: Instant,
    ) {
        self.output = outputs;
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

    fn remember(self, now: Instant) {
        let response = Remembered {
            key: self.key,
            response_id: self.response_id,
            forwarded: self.forwarded,
            output: self.output,
            account: self.account,
            at: now,
        };
        self.memory.remember(response, self.limits);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_assembled_answer_keeps_slices_of_its_chunks_and_is_remembered_once_completed() {
        let memory = ResponseMemory::default();
        let limits = Limits {
            ttl: Duration::from_secs(60),
            max_bytes: 1 << 20,
        };
        let key: Arc<str> = Arc::from("k");
        let forwarded = Bytes::from_static(b"{}");
        let account = AccountId::from("acct-a");
        let recording = |memory: &ResponseMemory| {
            let (key, forwarded) = (Arc::clone(&key), forwarded.clone());
            Recording::new(memory.clone(), key, forwarded, account.clone(), limits)
        };
        let done = "event: response.output_item.done\ndata: {\"output_index\":0,\"item\":{\"id\":\"msg_1\"}}\n\n";
        let completed = "event: response.completed\ndata: {\"response\":{\"id\":\"resp_1\"}}\n\n";
        let chunk = Bytes::from(format!("{done}{completed}"));
        let now = Instant::now();

        let mut unfinished = recording(&memory);
        unfinished.push(&Bytes::from(done));
        unfinished.finish(now);
        assert_eq!(memory.usage().1, 0, "remembered only once completed");

        let mut answer = recording(&memory);
        answer.push(&chunk);
        answer.finish(now);
        let entry = memory.response("k", "resp_1", now, limits.ttl).unwrap();
        assert_eq!(entry.output.len(), 1);
        assert_eq!(
            entry.output[0].as_ptr(),
            chunk.as_ptr(),
            "a slice, not a copy"
        );
        assert_eq!(entry.items()[0].id.as_deref(), Some("msg_1"));
    }
}
