//! The streams of bench mode, built once (as SSE bytes, and as WebSocket frame texts) from the
//! normal mode's event builders:
//!
//! * fast: one chunk of 58 events, about 18 KB — `response.created`, `response.in_progress`, a
//!   reasoning item (added, done) carrying `encrypted_content` as Codex asks for, a
//!   message of 48 text deltas (item added, part added, deltas, text done, part done, item done)
//!   and `response.completed` with the whole response and its usage: what a real short turn
//!   costs a relay to forward and to watch.
//! * paced N: N chunks — the start of the answer up to its first output item (a relay holds a
//!   stream back until then, so the first chunk must carry it or nothing would flow), then one
//!   text delta per chunk, then the end of the message and `response.completed`.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::super::events::{message_events, reasoning_events, Announce, Events, ResponseCtx};
use super::super::random_hex;
use super::super::stream::frame;

/// The model every bench answer names (one the mock's catalog serves).
pub(super) const MODEL: &str = "gpt-5.5";
/// Text deltas of the fast answer: with the ten other events, 58 events in all.
const FAST_DELTAS: usize = 48;
/// `encrypted_content` of the reasoning item, in bytes (sent twice: item done, completed).
const ENCRYPTED_BYTES: usize = 1200;
/// The size the usage's input tokens are estimated from: a Codex turn is about 40 KB.
const REQUEST_BYTES: usize = 40_000;
/// Words the answers are made of, cycled: plain prose, a few bytes a token like a model's.
const WORDS: [&str; 12] = [
    "The",
    "relay",
    "forwards",
    "each",
    "event",
    "to",
    "the",
    "client",
    "as",
    "it",
    "arrives,",
    "unchanged.",
];

/// The fast answer's events, sent in one chunk.
pub(super) fn fast() -> Vec<Value> {
    let ctx = context();
    let mut events = Events::default();
    ctx.created_events(&mut events);
    let encrypted = format!("gAAAAA{}", random_hex(ENCRYPTED_BYTES / 2));
    let reasoning = reasoning_events(&mut events, Some(encrypted), Announce::WithoutContent);
    let (message, tokens) = message_events(&mut events, 1, &text(FAST_DELTAS));
    let response = ctx.response("completed", vec![reasoning, message], ctx.usage(tokens));
    events.push("response.completed", json!({ "response": response }));
    events.into_vec()
}

/// The paced answer's events in `chunks` chunks (at least 3: the start, one delta, the end).
pub(super) fn paced(chunks: usize) -> Vec<Vec<Value>> {
    let deltas = chunks.max(3) - 2;
    let ctx = context();
    let mut events = Events::default();
    ctx.created_events(&mut events);
    let (message, tokens) = message_events(&mut events, 0, &text(deltas));
    let response = ctx.response("completed", vec![message], ctx.usage(tokens));
    events.push("response.completed", json!({ "response": response }));
    let mut events = events.into_vec();
    // created, in_progress, output_item.added, content_part.added | deltas | the rest.
    let mut rest = events.split_off(4.min(events.len()));
    let end = rest.split_off(deltas.min(rest.len()));
    std::iter::once(events)
        .chain(rest.into_iter().map(|delta| vec![delta]))
        .chain(std::iter::once(end))
        .collect()
}

fn context() -> ResponseCtx {
    let request = json!({
        "model": MODEL,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    });
    ResponseCtx::new(&request, REQUEST_BYTES)
}

/// `words` words; the mock's builder streams one delta per word.
fn text(words: usize) -> String {
    let words: Vec<&str> = WORDS.iter().copied().cycle().take(words).collect();
    words.join(" ")
}

/// The SSE bytes of one chunk of events.
pub(super) fn join(events: &[Value]) -> Bytes {
    let mut bytes = BytesMut::new();
    for event in events {
        bytes.extend_from_slice(&frame(event));
    }
    bytes.freeze()
}

/// The WebSocket frame texts of one chunk of events: one frame per event.
pub(super) fn texts(events: &[Value]) -> Vec<String> {
    events.iter().map(Value::to_string).collect()
}
