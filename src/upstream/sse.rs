//! Server-sent events on the side path: the relay forwards upstream bytes untouched and only
//! *watches* them — finding event boundaries, the event type, and the few events it needs to read
//! (`response.created` for the id, the terminal events for status and usage). Event payloads are
//! parsed only for those events, never re-encoded.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

/// Splits a byte stream into complete SSE event blocks. Only an incomplete tail is copied.
#[derive(Default)]
pub struct EventSplitter {
    pending: BytesMut,
}

impl EventSplitter {
    /// Feeds one chunk and calls `on_event` with each event block completed by it (without the
    /// blank line that ends it).
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            // An event straddles chunks: join them and look for ends from where the tail began.
            let scan_from = self.pending.len().saturating_sub(3);
            self.pending.extend_from_slice(chunk);
            let mut start = 0;
            let mut from = scan_from;
            while let Some((end, next)) = find_boundary(&self.pending[from..]) {
                on_event(&self.pending[start..from + end]);
                start = from + next;
                from = start;
            }
            let _ = self.pending.split_to(start);
            return;
        }
        let mut rest = chunk;
        while let Some((end, next)) = find_boundary(rest) {
            on_event(&rest[..end]);
            rest = &rest[next..];
        }
        self.pending.extend_from_slice(rest);
    }

    /// Bytes of an event that has not been completed yet.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

/// Finds the first blank line: returns (end of the event, start of what follows).
fn find_boundary(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes[i + 1] == b'\n' {
                return Some((i, i + 2));
            }
            if bytes[i + 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// The type of an event: its `event:` line, else the `"type"` of its data.
pub fn event_type(block: &[u8]) -> Option<&str> {
    for line in block.split(|b| *b == b'\n') {
        if let Some(name) = line.strip_prefix(b"event:") {
            return std::str::from_utf8(name).ok().map(str::trim);
        }
    }
    let data = data_of(block)?;
    let at = find(data, b"\"type\"")?;
    let after = &data[at + 6..];
    let open = after.iter().position(|b| *b == b'"')?;
    let name = &after[open + 1..];
    let close = name.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&name[..close]).ok()
}

/// The payload of the event's `data:` line(s) (multi-line data is joined as SSE defines).
pub fn data_of(block: &[u8]) -> Option<&[u8]> {
    block.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(b"data:")
            .map(|d| d.strip_prefix(b" ").unwrap_or(d))
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Token usage of a response, as `response.completed` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// How an upstream stream ended, as far as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    Completed { usage: Option<Usage> },
    Failed { code: Option<String> },
    Incomplete,
}

#[derive(Deserialize)]
struct TerminalEvent {
    response: TerminalResponse,
}

#[derive(Deserialize)]
struct TerminalResponse {
    id: Option<String>,
    usage: Option<Usage>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
}

/// Watches a forwarded stream: the response id, the last sequence number, whether any output
/// item started, and how the stream ended.
#[derive(Default)]
pub struct StreamWatcher {
    splitter: EventSplitter,
    pub response_id: Option<String>,
    pub last_sequence: Option<u64>,
    pub saw_output: bool,
    pub terminal: Option<Terminal>,
    pub events: u64,
}

impl StreamWatcher {
    pub fn observe(&mut self, chunk: &[u8]) {
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.push(chunk, |block| self.on_event(block));
        self.splitter = splitter;
    }

    fn on_event(&mut self, block: &[u8]) {
        self.events += 1;
        if let Some(seq) = sequence_number(block) {
            self.last_sequence = Some(seq);
        }
        match event_type(block) {
            Some("response.created") => {
                self.response_id = read_terminal(block).and_then(|r| r.id);
            }
            Some("response.output_item.added") => self.saw_output = true,
            Some("response.completed") => {
                let usage = read_terminal(block).and_then(|r| r.usage);
                self.terminal = Some(Terminal::Completed { usage });
            }
            Some("response.failed") => {
                let code = read_terminal(block).and_then(|r| r.error.and_then(|e| e.code));
                self.terminal = Some(Terminal::Failed { code });
            }
            Some("response.incomplete") => self.terminal = Some(Terminal::Incomplete),
            _ => {}
        }
    }
}

fn read_terminal(block: &[u8]) -> Option<TerminalResponse> {
    let event: TerminalEvent = serde_json::from_slice(data_of(block)?).ok()?;
    Some(event.response)
}

fn sequence_number(block: &[u8]) -> Option<u64> {
    let data = data_of(block)?;
    let at = find(data, b"\"sequence_number\":")?;
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
            splitter.push(chunk, |block| {
                out.push(String::from_utf8_lossy(block).into_owned())
            });
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

    #[test]
    fn the_watcher_sees_id_sequence_output_and_usage() {
        let mut watcher = StreamWatcher::default();
        for chunk in STREAM.as_bytes().chunks(7) {
            watcher.observe(chunk);
        }
        assert_eq!(watcher.response_id.as_deref(), Some("resp_1"));
        assert_eq!(watcher.last_sequence, Some(2));
        assert!(watcher.saw_output);
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 4,
            total_tokens: 7,
        };
        assert_eq!(
            watcher.terminal,
            Some(Terminal::Completed { usage: Some(usage) })
        );
    }

    #[test]
    fn a_failed_event_is_read_with_its_code() {
        let mut watcher = StreamWatcher::default();
        watcher.observe(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_is_overloaded\"}}}\n\n");
        assert_eq!(
            watcher.terminal,
            Some(Terminal::Failed {
                code: Some("server_is_overloaded".into())
            })
        );
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
