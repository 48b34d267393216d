//! Recording one answer for the memory, lazily: its `response.output_item.done` events — for a
//! stream, the slices its watcher kept as they were forwarded; for an assembled answer, the
//! slices its assembler kept of the chunks it split — are copied into one buffer of their own
//! ([`super::memory::Events`]) and nothing in them is parsed until a later request refers to the
//! response ([`super::memory::Remembered::items`]). Only the response id is indexed here, and the
//! answer is remembered once `response.completed` has come (the caller knows when).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use relay_actors::AccountId;

use super::memory::{Events, Limits, Remembered, ResponseMemory};

/// What an answer's recording needs: where to remember it, for whom, and what was forwarded.
pub struct Recording {
    memory: ResponseMemory,
    key: Arc<str>,
    forwarded: Bytes,
    account: AccountId,
    limits: Limits,
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
        }
    }

    /// A completed answer: remembers its `response.output_item.done` events (as its stream's
    /// watcher or its assembler kept them, in stream order) under `response_id`.
    pub fn finish(self, outputs: Vec<Bytes>, response_id: Option<String>, now: Instant) {
        let response = Remembered {
            key: self.key,
            response_id,
            forwarded: self.forwarded,
            output: Events::copied(&outputs),
            account: self.account,
            at: now,
        };
        self.memory.remember(response, self.limits);
    }
}
