//! Expanding a request's references before it goes upstream, from what the memory holds for the
//! caller's key: `previous_response_id` becomes that response's input and output followed by the
//! new input; an `item_reference`, or a reasoning item sent back without its
//! `encrypted_content`, becomes the item the relay returned. Built as text: every item is copied
//! byte for byte, nothing is decoded but each item's `type`, `id` and `encrypted_content`. This
//! is where a remembered answer's events are first parsed (the memory keeps them unparsed); the
//! owned copies of its items are zeroized once copied into the new input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_actors::AccountId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::memory::{Remembered, ResponseMemory};
use crate::request_body::{kind, Kind, RequestBody};

/// A reference the memory does not hold for this key (expired, forgotten, another key's, or
/// never served by this relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    Response(String),
    Item(String),
}

/// The request's new `input` (a JSON list) and the account that wrote the newest item it took
/// from memory.
#[derive(Debug)]
pub struct Expanded {
    pub input: Box<RawValue>,
    pub written_by: Option<AccountId>,
}

/// What is read of an input item to know whether it refers to a remembered one.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    encrypted_content: Option<&'a RawValue>,
}

/// The list being built, and the newest remembered response it took from.
struct Builder<'m> {
    memory: &'m ResponseMemory,
    key: &'m str,
    now: Instant,
    ttl: Duration,
    text: String,
    newest: Option<Arc<Remembered>>,
}

/// Expands `previous` and the references among `input`'s items for the caller `key`.
pub fn expand(
    memory: &ResponseMemory,
    key: &str,
    previous: Option<&str>,
    input: Option<&RawValue>,
    now: Instant,
    ttl: Duration,
) -> Result<Expanded, Unknown> {
    let mut builder = Builder {
        memory,
        key,
        now,
        ttl,
        text: String::from("["),
        newest: None,
    };
    if let Some(id) = previous {
        builder.previous(id)?;
    }
    if let Some(input) = input {
        builder.input(input)?;
    }
    builder.text.push(']');
    let written_by = builder.newest.as_ref().map(|entry| entry.account.clone());
    let input = RawValue::from_string(builder.text).map_err(|_| Unknown::Item(String::new()))?;
    Ok(Expanded { input, written_by })
}

impl Builder<'_> {
    fn push(&mut self, item: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(item);
    }

    fn took(&mut self, entry: &Arc<Remembered>) {
        if self
            .newest
            .as_ref()
            .is_none_or(|newest| newest.at <= entry.at)
        {
            self.newest = Some(Arc::clone(entry));
        }
    }

    /// The remembered response's input, then its output.
    fn previous(&mut self, id: &str) -> Result<(), Unknown> {
        let entry = self
            .memory
            .response(self.key, id, self.now, self.ttl)
            .ok_or_else(|| Unknown::Response(id.to_owned()))?;
        if let Ok(body) = RequestBody::parse(&entry.forwarded) {
            if let Some(input) = body.get("input") {
                self.copy(input);
            }
        }
        for item in entry.items() {
            self.push(&item.json);
        }
        self.took(&entry);
        Ok(())
    }

    /// A remembered input, copied as it was forwarded (a string input as one user message).
    fn copy(&mut self, input: &RawValue) {
        match kind(input) {
            Kind::Array => {
                if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(input.get()) {
                    for item in items {
                        self.push(item.get());
                    }
                }
            }
            Kind::String => {
                let message = serde_json::json!({"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": serde_json::from_str::<String>(input.get()).unwrap_or_default()}]});
                self.push(&message.to_string());
            }
            _ => {}
        }
    }

    /// The new input's items, each reference replaced by its item.
    fn input(&mut self, input: &RawValue) -> Result<(), Unknown> {
        if kind(input) != Kind::Array {
            self.copy(input);
            return Ok(());
        }
        let items = serde_json::from_str::<Vec<&RawValue>>(input.get()).unwrap_or_default();
        for item in items {
            match referred_id(item) {
                Some(id) => self.item(&id)?,
                None => self.push(item.get()),
            }
        }
        Ok(())
    }

    fn item(&mut self, id: &str) -> Result<(), Unknown> {
        let (entry, item) = self
            .memory
            .item(self.key, id, self.now, self.ttl)
            .ok_or_else(|| Unknown::Item(id.to_owned()))?;
        self.push(&item.json);
        self.took(&entry);
        Ok(())
    }
}

/// The id an item refers to: an `item_reference`'s, or a reasoning item's sent back without its
/// encrypted content (useless to a backend that stores nothing).
fn referred_id(item: &RawValue) -> Option<String> {
    let probe = serde_json::from_str::<Probe>(item.get()).ok()?;
    let refers = match probe.kind.map(RawValue::get) {
        Some("\"item_reference\"") => true,
        Some("\"reasoning\"") => probe.encrypted_content.is_none_or(|c| c.get() == "null"),
        _ => false,
    };
    refers.then(|| string_id(&probe)).flatten()
}

/// The item's `id`, when it is a string.
fn string_id(probe: &Probe) -> Option<String> {
    let id = probe.id.filter(|id| kind(id) == Kind::String)?;
    serde_json::from_str(id.get()).ok()
}

/// The account that wrote the newest of the encrypted items `input` replays with their content,
/// as far as the memory holds them for `key`: a client that keeps reasoning itself (it asked
/// for `reasoning.encrypted_content`) but sends no conversation key still goes back to the one
/// account that can read it. `None` when no replayed item is remembered.
pub fn writer_of_replayed(
    memory: &ResponseMemory,
    key: &str,
    input: &RawValue,
    now: Instant,
    ttl: Duration,
) -> Option<AccountId> {
    let items = serde_json::from_str::<Vec<&RawValue>>(input.get()).ok()?;
    // The newest item first: a conversation that moved earlier is read where it is now.
    let ids: Vec<String> = items
        .iter()
        .rev()
        .filter_map(|item| encrypted_id(item))
        .collect();
    memory.writer_of(key, &ids, now, ttl)
}

/// The id of an item sent with its `encrypted_content`.
fn encrypted_id(item: &RawValue) -> Option<String> {
    let probe = serde_json::from_str::<Probe>(item.get()).ok()?;
    probe.encrypted_content.filter(|c| c.get() != "null")?;
    string_id(&probe)
}

#[cfg(test)]
mod tests;
