//! W3C Trace Context (Level 2) at the edge of both planes. A request belongs to the client's trace
//! when it sends a valid `traceparent` (its `tracestate` kept with it), else to a new trace; the
//! relay's own span for the request is always new, its parent the client's span. The request's
//! logger stamps `trace_id` and `span_id` on every line, and the answer names both in
//! `traceresponse` (`00-<trace-id>-<span-id>-<flags>`).
//!
//! A malformed `traceparent` is ignored and a new trace starts: tracing never fails a request.
//! The client's trace context is never sent on to the upstream (`upstream::headers`).

use std::fmt;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// The flags Level 2 defines: the caller may have recorded the trace; the trace id is random.
const SAMPLED: u8 = 0x01;
const RANDOM_TRACE_ID: u8 = 0x02;

/// The longest `tracestate` kept, in bytes, and its most list members (the spec's limits).
const TRACESTATE_MAX_BYTES: usize = 512;
const TRACESTATE_MAX_MEMBERS: usize = 32;

/// `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex: a version-00 `traceparent`, and a `traceresponse`.
const HEADER_LEN: usize = 55;

/// A trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TraceId([u8; 16]);

/// A span id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SpanId([u8; 8]);

/// What a valid `traceparent` says: the trace, the client's span in it, and its flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// Only the flags Level 2 defines; unknown bits are dropped, as the spec asks.
    pub flags: u8,
}

/// One request's place in a trace.
#[derive(Clone, Debug)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The relay's span for this request (new for every request).
    pub span_id: SpanId,
    /// The client's span, when it sent a valid `traceparent`.
    pub parent_span_id: Option<SpanId>,
    pub flags: u8,
    /// The client's `tracestate` when it is well formed and within the spec's limits.
    pub tracestate: Option<Arc<str>>,
}

impl Trace {
    /// The trace of a request with these headers: the client's, or a new one.
    pub fn of(headers: &HeaderMap) -> Trace {
        let Some(parent) = single_text(headers, TRACEPARENT).and_then(parse_traceparent) else {
            return Trace::start();
        };
        // The spec ties `tracestate` to its `traceparent`: without a valid parent it is not read.
        let tracestate = tracestate(headers).map(Arc::from);
        Trace {
            trace_id: parent.trace_id,
            span_id: SpanId(random_nonzero()),
            parent_span_id: Some(parent.span_id),
            flags: parent.flags,
            tracestate,
        }
    }

    /// A new trace, begun by the relay: its random id says so, and the relay records it (its
    /// request lines), so both flags are set.
    pub fn start() -> Trace {
        Trace {
            trace_id: TraceId(random_nonzero()),
            span_id: SpanId(random_nonzero()),
            parent_span_id: None,
            flags: SAMPLED | RANDOM_TRACE_ID,
            tracestate: None,
        }
    }

    /// The `traceresponse` header's value: `00-<trace-id>-<span-id>-<flags>`, built on the stack.
    pub fn traceresponse(&self) -> Option<HeaderValue> {
        let mut value = [0u8; HEADER_LEN];
        let (version, rest) = value.split_at_mut(3);
        version.copy_from_slice(b"00-");
        let (trace, rest) = rest.split_at_mut(33);
        write_hex(&self.trace_id.0, trace);
        trace[32] = b'-';
        let (span, flags) = rest.split_at_mut(17);
        write_hex(&self.span_id.0, span);
        span[16] = b'-';
        write_hex(&[self.flags], flags);
        HeaderValue::from_bytes(&value).ok()
    }
}

/// The value of a header sent exactly once, as text: a repeated `traceparent` is not trusted.
fn single_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name);
    let value = values.next()?;
    match values.next() {
        Some(_) => None,
        None => value.to_str().ok(),
    }
}

/// Parses a `traceparent` value; `None` when it is not valid (then a new trace starts).
///
/// Version 00 is exactly 55 characters. A later version may append fields after a dash, which are
/// skipped: the spec asks a participant to read the version-00 part of a version it does not
/// know. Version `ff` is forbidden; ids of all zeros are invalid; hex must be lowercase.
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.as_bytes();
    let version = value.get(..2).and_then(hex_byte)?;
    let fixed_length = match version {
        0xff => return None,
        0x00 => value.len() == HEADER_LEN,
        _ => value.len() == HEADER_LEN || value.get(HEADER_LEN) == Some(&b'-'),
    };
    let dashes = [2, 35, 52].iter().all(|&at| value.get(at) == Some(&b'-'));
    if !fixed_length || !dashes {
        return None;
    }
    let trace_id: [u8; 16] = read_hex(value.get(3..35)?)?;
    let span_id: [u8; 8] = read_hex(value.get(36..52)?)?;
    let flags = value.get(53..55).and_then(hex_byte)?;
    if is_zero(&trace_id) || is_zero(&span_id) {
        return None;
    }
    Some(Parent {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
        flags: flags & (SAMPLED | RANDOM_TRACE_ID),
    })
}

/// The client's `tracestate` (its headers joined with commas, as HTTP combines them), when every
/// list member is `key=value` in the spec's alphabet and the whole is within its limits; else
/// none — an invalid one is dropped whole, never repaired.
fn tracestate(headers: &HeaderMap) -> Option<String> {
    let mut joined = String::new();
    for value in headers.get_all(TRACESTATE) {
        let text = value.to_str().ok()?;
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text.trim());
        if joined.len() > TRACESTATE_MAX_BYTES {
            return None;
        }
    }
    let members = joined.split(',').map(str::trim).filter(|m| !m.is_empty());
    let mut count = 0;
    for member in members {
        count += 1;
        if count > TRACESTATE_MAX_MEMBERS || !valid_member(member) {
            return None;
        }
    }
    (count > 0).then_some(joined)
}

/// `key=value`: a key of lowercase letters, digits and `_-*/@`, starting with a letter or digit;
/// a value of printable ASCII without `,` or `=`, not ending in a space.
fn valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_ok = key.len() <= 256
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        });
    let value_ok = (1..=256).contains(&value.len())
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    key_ok && value_ok
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while is_zero(&bytes) {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    bytes
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Lowercase hex digits only: the spec makes uppercase invalid.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [high, low] => Some(nibble(*high)? << 4 | nibble(*low)?),
        _ => None,
    }
}

fn read_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(bytes)
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Hands `bytes` (an id: at most 16 of them) to `use_text` as lowercase hex, built on the stack.
fn as_hex<R>(bytes: &[u8], use_text: impl FnOnce(&str) -> R) -> R {
    let mut text = [0u8; 32];
    let text = &mut text[..2 * bytes.len().min(16)];
    write_hex(bytes, text);
    // Hex digits are ASCII: this never falls back.
    use_text(std::str::from_utf8(text).unwrap_or_default())
}

impl TraceId {
    /// Its 32 hex digits, without the formatter's machinery (an audit row takes it per request).
    pub fn to_hex(&self) -> compact_str::CompactString {
        as_hex(&self.0, |hex| compact_str::CompactString::from(hex))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        as_hex(&self.0, |hex| f.write_str(hex))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        as_hex(&self.0, |hex| f.write_str(hex))
    }
}

/// Log values: the id as hex, written into the line from the stack (no string is built for it).
macro_rules! hex_log_value {
    ($id:ty) => {
        impl slog::Value for $id {
            fn serialize(
                &self,
                _: &slog::Record,
                key: slog::Key,
                serializer: &mut dyn slog::Serializer,
            ) -> slog::Result {
                as_hex(&self.0, |hex| serializer.emit_str(key, hex))
            }
        }
    };
}

hex_log_value!(TraceId);
hex_log_value!(SpanId);

#[cfg(test)]
mod tests;
