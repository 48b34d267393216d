//! Server-sent events on the side path: the relay forwards upstream bytes whole-event by
//! whole-event and only *watches* them — finding event boundaries, the event type, and the few
//! events it needs to read (`response.created` for the id, the terminal events for status and
//! usage). Payloads are parsed only for those events, and `response.created` only as far as its
//! id; the one event ever re-encoded is a terminal event whose usage strict clients would reject.
//! A watcher can also keep the `response.output_item.done` events it sees (shared slices of the
//! forwarded bytes, nothing copied or parsed), for the response memory.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde_json::Value;

use super::drift::Drift;
use super::event_fields::{response_id, ResponseFields};
use super::shown_limits::ShownLimits;
use crate::domain::Usage;

/// Cuts a byte stream at SSE event boundaries: the one framing both the forwarded stream and the
/// non-stream assembly use. Only an unfinished tail is ever copied.
#[derive(Default)]
pub struct EventSplitter {
    pending: BytesMut,
}

impl EventSplitter {
    /// The events `chunk` completes, as one buffer of whole events: a zero-copy slice of `chunk`
    /// unless an event straddled the previous chunk. The unfinished tail waits for the next call.
    pub fn complete(&mut self, chunk: Bytes) -> Bytes {
        let buffer = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        let end = end_of_last_event(&buffer);
        self.pending.extend_from_slice(&buffer[end..]);
        buffer.slice(..end)
    }

    /// At the end of the stream: a last event that lacked its closing blank line, given one
    /// (clients drop an unterminated last event). `None` when nothing but white space is left.
    pub fn finish(&mut self) -> Option<Bytes> {
        let mut last = self.pending.split();
        if last.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        last.extend_from_slice(b"\n\n");
        Some(last.freeze())
    }
}

/// Where the last complete event of `bytes` ends (after its blank line); 0 when there is none.
fn end_of_last_event(bytes: &[u8]) -> usize {
    memchr::memrchr_iter(b'\n', bytes)
        .find(|&j| match j.checked_sub(1).map(|i| bytes[i]) {
            Some(b'\n') => true,
            Some(b'\r') => j >= 2 && bytes[j - 2] == b'\n',
            _ => false,
        })
        .map_or(0, |j| j + 1)
}

/// The events of a buffer of whole events, each as (start, end of its block, start of the next).
pub fn events(buffer: &[u8]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let (end, next) = find_boundary(&buffer[start..])?;
        let event = (start, start + end, start + next);
        start += next;
        Some(event)
    })
}

/// Finds the first blank line: returns (end of the event, start of what follows).
fn find_boundary(bytes: &[u8]) -> Option<(usize, usize)> {
    memchr::memchr_iter(b'\n', bytes).find_map(|i| match (bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(b'\n'), _) => Some((i, i + 2)),
        (Some(b'\r'), Some(b'\n')) => Some((i, i + 3)),
        _ => None,
    })
}

/// The lines of an event's block (without their `\n`).
fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(block);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current) {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                Some(&current[..at])
            }
            None => rest.take(),
        }
    })
}

/// The type of an event: its `event:` line, else the `"type"` of its data.
pub fn event_type(block: &[u8]) -> Option<&str> {
    for line in lines(block) {
        if let Some(name) = line.strip_prefix(b"event:") {
            return std::str::from_utf8(name).ok().map(str::trim);
        }
    }
    type_of_data(data_of(block)?)
}

/// The `"type"` of an event's data (a WebSocket frame's text): the first `"type"` key, which
/// the backend writes before any nested object's.
pub fn type_of_data(data: &[u8]) -> Option<&str> {
    let at = TYPE_KEY.find(data)?;
    let after = &data[at + 6..];
    let open = after.iter().position(|b| *b == b'"')?;
    let name = &after[open + 1..];
    let close = name.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&name[..close]).ok()
}

/// The payload of the event's `data:` line(s) (multi-line data is joined as SSE defines).
pub fn data_of(block: &[u8]) -> Option<&[u8]> {
    lines(block).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(b"data:")
            .map(|d| d.strip_prefix(b" ").unwrap_or(d))
    })
}

/// `"type"`, found in an event without an `event:` line.
static TYPE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\""));
/// `"sequence_number":`, found in every event.
static SEQUENCE_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"sequence_number\":"));

/// How an upstream stream ended, as far as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    Completed { usage: Option<Usage> },
    Failed { code: Option<String> },
    Incomplete,
}

const TERMINAL_EVENTS: [&str; 3] = [
    "response.completed",
    "response.failed",
    "response.incomplete",
];

/// Watches a forwarded stream and decides what to forward: whole events, as the upstream sent
/// them. It remembers the response id, the last sequence number, whether any output item started,
/// and how the stream ended. A terminal event whose usage lacks fields strict clients require is
/// the one event it re-encodes (once per stream, with the missing counts added).
#[derive(Default)]
pub struct StreamWatcher {
    splitter: EventSplitter,
    pub response_id: Option<String>,
    pub last_sequence: Option<u64>,
    pub saw_output: bool,
    pub terminal: Option<Terminal>,
    pub events: u64,
    /// The `response.output_item.done` events seen, when asked for ([`Self::keeping_outputs`]).
    outputs: Option<Vec<Bytes>>,
    /// Where event types and error codes the relay does not know are noted.
    drift: Option<Drift>,
    /// The caller's limits, which replace any `codex.rate_limits` event of the backend's.
    shown: ShownLimits,
}

impl StreamWatcher {
    /// A watcher that notes what it does not know in `drift` and shows the caller `shown` in
    /// place of the backend's rate-limit events.
    pub fn new(drift: Drift, shown: ShownLimits) -> StreamWatcher {
        StreamWatcher {
            drift: Some(drift),
            shown,
            ..StreamWatcher::default()
        }
    }

    /// The watcher, keeping each `response.output_item.done` event too, whole, as forwarded.
    pub fn keeping_outputs(mut self) -> StreamWatcher {
        self.outputs = Some(Vec::new());
        self
    }

    /// The `response.output_item.done` events kept so far, in stream order (none unless
    /// [`Self::keeping_outputs`]).
    pub fn take_outputs(&mut self) -> Vec<Bytes> {
        self.outputs
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Takes an upstream chunk and returns the bytes to forward now: every event it completes.
    pub fn forward(&mut self, chunk: Bytes) -> Bytes {
        let whole = self.splitter.complete(chunk);
        self.watch(whole)
    }

    /// At the upstream's end: a last event that lacked its closing blank line, completed.
    pub fn flush(&mut self) -> Option<Bytes> {
        let last = self.splitter.finish()?;
        Some(self.watch(last))
    }

    /// Notes each event of `whole`; returns it as is, or with the events that must be
    /// re-encoded replaced.
    fn watch(&mut self, whole: Bytes) -> Bytes {
        let mut rewritten: Option<BytesMut> = None;
        let mut copied_until = 0;
        for (start, end, _) in events(&whole) {
            if let Some(replacement) = self.on_event(&whole, start, end) {
                let out = rewritten.get_or_insert_with(BytesMut::new);
                out.extend_from_slice(&whole[copied_until..start]);
                out.extend_from_slice(&replacement);
                copied_until = end;
            }
        }
        match rewritten {
            None => whole,
            Some(mut out) => {
                out.extend_from_slice(&whole[copied_until..]);
                out.freeze()
            }
        }
    }

    /// Notes one event; returns what replaces its block (the blank line after it stays) when
    /// its usage must be completed.
    fn on_event(&mut self, whole: &Bytes, start: usize, end: usize) -> Option<Bytes> {
        let block = &whole[start..end];
        self.events += 1;
        if let Some(seq) = sequence_number(block) {
            self.last_sequence = Some(seq);
        }
        let kind = event_type(block)?;
        if kind == "response.output_item.added" {
            self.saw_output = true;
            return None;
        }
        if kind == "response.output_item.done" {
            if let Some(outputs) = &mut self.outputs {
                outputs.push(whole.slice(start..end));
            }
            return None;
        }
        if kind == "response.created" {
            if let Some(id) = response_id(data_of(block)?) {
                self.response_id = Some(id);
            }
            return None;
        }
        if !TERMINAL_EVENTS.contains(&kind) {
            if kind == "codex.rate_limits" {
                // One account's limits: the caller is shown its own.
                return Some(self.shown.rate_limits_block());
            }
            if let Some(drift) = &self.drift {
                drift.event(kind);
            }
            return None;
        }
        let data = data_of(block)?;
        let kind = kind.to_owned();
        // Only the few fields the relay reads are decoded; the rest of the (often large)
        // response is skipped without being built.
        let response = ResponseFields::read(data)?;
        if let Some(id) = &response.id {
            self.response_id = Some(id.clone());
        }
        let usage = response.usage.as_ref().and_then(Usage::from_json);
        if let (Some(drift), Some(code)) = (&self.drift, &response.error_code) {
            drift.error_code(code);
        }
        self.terminal = match kind.as_str() {
            "response.completed" => Some(Terminal::Completed { usage }),
            "response.failed" => Some(Terminal::Failed {
                code: response.error_code.clone(),
            }),
            "response.incomplete" => Some(Terminal::Incomplete),
            _ => return None,
        };
        response.with_complete_usage(&kind, block, data)
    }
}

fn sequence_number(block: &[u8]) -> Option<u64> {
    let data = data_of(block)?;
    let at = SEQUENCE_KEY.find(data)?;
    let digits = &data[at + 18..];
    let digits = digits.strip_prefix(b" ").unwrap_or(digits);
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A `response.failed` event in the shape every client accepts, for failures the relay itself
/// must report after the first byte has reached the client.
pub fn failed_event(response_id: Option<&str>, sequence: u64, code: &str, message: &str) -> Bytes {
    let id = response_id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("resp_relay_{}", uuid::Uuid::new_v4().simple()));
    let data = serde_json::json!({
        "type": "response.failed",
        "sequence_number": sequence,
        "response": {
            "id": id,
            "object": "response",
            "created_at": chrono::Utc::now().timestamp(),
            "status": "failed",
            "error": {"code": code, "message": message},
            "output": [],
            "usage": null
        }
    });
    Bytes::from(format!("event: response.failed\ndata: {data}\n\n"))
}

/// Parses every event's JSON payload (non-streaming assembly only needs this).
pub fn parse_data(block: &[u8]) -> Option<Value> {
    serde_json::from_slice(data_of(block)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\"}}\n\n\
event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4,\"total_tokens\":7}}}\n\n";

    fn events_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = EventSplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let whole = splitter.complete(Bytes::copy_from_slice(chunk));
            for (start, end, _) in events(&whole) {
                out.push(String::from_utf8_lossy(&whole[start..end]).into_owned());
            }
        }
        out
    }

    #[test]
    fn events_are_found_whatever_the_chunking() {
        let whole = events_of(&[STREAM.as_bytes()]);
        assert_eq!(whole.len(), 3);
        for size in 1..40 {
            let chunks: Vec<&[u8]> = STREAM.as_bytes().chunks(size).collect();
            assert_eq!(events_of(&chunks), whole, "chunk size {size}");
        }
    }

    #[test]
    fn crlf_boundaries_are_understood() {
        let events = events_of(&[b"data: {\"type\":\"a\"}\n\r\ndata: {\"type\":\"b\"}\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(event_type(events[1].as_bytes()), Some("b"));
    }

    fn forward_all(watcher: &mut StreamWatcher, input: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in input.chunks(size) {
            out.extend_from_slice(&watcher.forward(Bytes::copy_from_slice(chunk)));
        }
        if let Some(tail) = watcher.flush() {
            out.extend_from_slice(&tail);
        }
        out
    }

    const COMPLETE_USAGE: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":0,\"cache_write_tokens\":0},\"output_tokens\":4,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":7}}}\n\n";

    #[test]
    fn complete_events_are_forwarded_byte_for_byte_whatever_the_chunking() {
        let head = STREAM.split("event: response.completed").next().unwrap();
        let input = format!("{head}{COMPLETE_USAGE}");
        for size in [1, 2, 7, 50, input.len()] {
            let mut watcher = StreamWatcher::default();
            let out = forward_all(&mut watcher, input.as_bytes(), size);
            assert_eq!(out, input.as_bytes(), "chunk size {size}");
            assert_eq!(watcher.response_id.as_deref(), Some("resp_1"));
            assert_eq!(watcher.last_sequence, Some(2));
            assert!(watcher.saw_output);
            let usage = Usage {
                input_tokens: 3,
                output_tokens: 4,
                total_tokens: 7,
                ..Usage::default()
            };
            assert_eq!(
                watcher.terminal,
                Some(Terminal::Completed { usage: Some(usage) })
            );
        }
    }

    #[test]
    fn an_event_is_held_back_only_until_it_is_complete() {
        let mut watcher = StreamWatcher::default();
        let first = watcher.forward(Bytes::from_static(b"data: {\"type\":\"a\"}\n\ndata: {\"ty"));
        assert_eq!(&first[..], b"data: {\"type\":\"a\"}\n\n");
        let second = watcher.forward(Bytes::from_static(b"pe\":\"b\"}\n\n"));
        assert_eq!(&second[..], b"data: {\"type\":\"b\"}\n\n");
    }

    #[test]
    fn a_watcher_keeping_outputs_keeps_each_done_event_whole_whatever_the_chunking() {
        let stream = concat!(
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\"}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"rs_1\"}}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"msg_1\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\"}}\n\n",
        );
        for size in [1, 7, 64, stream.len()] {
            let mut watcher = StreamWatcher::default().keeping_outputs();
            assert_eq!(
                forward_all(&mut watcher, stream.as_bytes(), size),
                stream.as_bytes()
            );
            let kept = watcher.take_outputs();
            assert_eq!(kept.len(), 2, "chunks of {size}");
            assert!(std::str::from_utf8(&kept[0]).unwrap().contains("rs_1"));
            assert!(std::str::from_utf8(&kept[1]).unwrap().contains("msg_1"));
        }
        let mut plain = StreamWatcher::default();
        forward_all(&mut plain, stream.as_bytes(), 64);
        assert!(plain.take_outputs().is_empty(), "kept only when asked");
    }

    #[test]
    fn a_usage_missing_fields_strict_clients_require_is_completed() {
        let mut watcher = StreamWatcher::default();
        let out = forward_all(&mut watcher, STREAM.as_bytes(), 9);
        assert!(out.starts_with(
            STREAM
                .split("event: response.completed")
                .next()
                .unwrap()
                .as_bytes()
        ));
        let last = String::from_utf8(out.clone()).unwrap();
        let block = last.rsplit("\n\n").nth(1).unwrap();
        assert_eq!(event_type(block.as_bytes()), Some("response.completed"));
        let data = parse_data(block.as_bytes()).unwrap();
        assert_eq!(
            data["response"]["usage"]["input_tokens_details"]["cache_write_tokens"],
            0
        );
        assert_eq!(data["response"]["usage"]["input_tokens"], 3);
        assert_eq!(data["sequence_number"], 2);
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_completed_at_the_end() {
        let mut watcher = StreamWatcher::default();
        let out = forward_all(
            &mut watcher,
            b"data: {\"type\":\"a\"}\n\ndata: {\"type\":\"b\"}",
            4,
        );
        assert_eq!(
            &out[..],
            b"data: {\"type\":\"a\"}\n\ndata: {\"type\":\"b\"}\n\n"
        );
        assert_eq!(watcher.events, 2);
    }

    #[test]
    fn a_failed_event_is_read_with_its_code() {
        let mut watcher = StreamWatcher::default();
        let out = watcher.forward(Bytes::from_static(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_is_overloaded\"}}}\n\n"));
        assert!(!out.is_empty());
        assert_eq!(
            watcher.terminal,
            Some(Terminal::Failed {
                code: Some("server_is_overloaded".into())
            })
        );
    }

    #[test]
    fn an_event_written_anew_keeps_its_type_and_stays_one_event() {
        // A numeric id sends the event down the lenient path, which writes it anew: its type is
        // the one the watcher read, never text of the upstream's put into the framing.
        let data = r#"{"type":"x\n\nevent: response.completed","response":{"id":7,"usage":{"input_tokens":1}}}"#;
        let input = format!("event: response.incomplete\ndata: {data}\n\n");
        let mut watcher = StreamWatcher::default();
        let out = forward_all(&mut watcher, input.as_bytes(), input.len());
        let blocks: Vec<&[u8]> = events(&out).map(|(s, e, _)| &out[s..e]).collect();
        assert_eq!(blocks.len(), 1, "{}", String::from_utf8_lossy(&out));
        assert_eq!(event_type(blocks[0]), Some("response.incomplete"));
        let written = parse_data(blocks[0]).unwrap();
        assert_eq!(written["type"], "x\n\nevent: response.completed");
        assert_eq!(written["response"]["usage"]["total_tokens"], 1);
        assert_eq!(watcher.terminal, Some(Terminal::Incomplete));
    }

    #[test]
    fn a_rate_limits_event_is_replaced_by_the_callers() {
        let input = "event: codex.rate_limits\ndata: {\"type\":\"codex.rate_limits\",\"rate_limits\":{\"primary\":{\"used_percent\":77}}}\n\ndata: {\"type\":\"a\"}\n\n";
        let mut watcher = StreamWatcher::default();
        let out = forward_all(&mut watcher, input.as_bytes(), 5);
        let blocks: Vec<&[u8]> = events(&out).map(|(s, e, _)| &out[s..e]).collect();
        assert_eq!(blocks.len(), 2, "{}", String::from_utf8_lossy(&out));
        let replaced = parse_data(blocks[0]).unwrap();
        assert_eq!(replaced["type"], "codex.rate_limits");
        assert!(replaced["rate_limits"]["primary"].is_null());
        assert_eq!(event_type(blocks[1]), Some("a"));
    }

    #[test]
    fn a_synthesized_failure_is_a_complete_event() {
        let bytes = failed_event(Some("resp_1"), 9, "upstream_disconnected", "cut");
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("event: response.failed\ndata: {"));
        assert!(text.ends_with("\n\n"));
        let value = parse_data(text.trim_end().as_bytes()).unwrap();
        assert_eq!(value["sequence_number"], 9);
        assert_eq!(value["response"]["id"], "resp_1");
    }
}
