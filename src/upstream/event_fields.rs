//! The few fields of a `response.*` event the relay reads (`response.id`, `.usage`,
//! `.error.code`), decoded without building the rest of the response, and the one change the
//! relay makes to an event: a usage that lacks counts strict clients require is completed in
//! place. Only the usage object is re-encoded; every other byte of the event is copied as the
//! upstream sent it.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::usage::complete;

/// What the watcher reads of an event's `response`.
#[derive(Debug, Default, PartialEq)]
pub struct ResponseFields {
    pub id: Option<String>,
    pub usage: Option<Value>,
    pub error_code: Option<String>,
    /// Where the usage object sits in the event's data, when it was found there.
    usage_at: Option<Range<usize>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    response: Option<Typed<'a>>,
}

#[derive(Deserialize)]
struct Typed<'a> {
    id: Option<String>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    error: Option<TypedError>,
}

#[derive(Deserialize)]
struct TypedError {
    code: Option<String>,
}

impl ResponseFields {
    /// Reads `data` (an event's JSON). An event with odd types (a numeric id, say) is read as
    /// any JSON, field by field, leniently.
    pub fn read(data: &[u8]) -> Option<ResponseFields> {
        match serde_json::from_slice::<Envelope<'_>>(data) {
            Ok(Envelope { response: None }) => Some(ResponseFields::default()),
            Ok(Envelope {
                response: Some(typed),
            }) => {
                let usage = typed.usage.filter(|raw| raw.get() != "null");
                Some(ResponseFields {
                    id: typed.id,
                    usage: usage.and_then(|raw| serde_json::from_str(raw.get()).ok()),
                    error_code: typed.error.and_then(|e| e.code),
                    usage_at: usage.and_then(|raw| span_within(data, raw.get().as_bytes())),
                })
            }
            Err(_) => {
                let data: Value = serde_json::from_slice(data).ok()?;
                let response = &data["response"];
                Some(ResponseFields {
                    id: response["id"].as_str().map(str::to_owned),
                    usage: Some(response["usage"].clone()).filter(|u| !u.is_null()),
                    error_code: response["error"]["code"].as_str().map(str::to_owned),
                    usage_at: None,
                })
            }
        }
    }

    /// The event `block` (whose data is `data`, whose type the watcher read as `kind`) with its
    /// usage completed, or `None` when it needs nothing: no usage (a missing usage stays
    /// missing), or one that is complete.
    pub fn with_complete_usage(&self, kind: &str, block: &[u8], data: &[u8]) -> Option<Bytes> {
        let mut usage = self.usage.clone().filter(Value::is_object)?;
        if !complete(&mut usage) {
            return None;
        }
        let usage = serde_json::to_vec(&usage).ok()?;
        match &self.usage_at {
            Some(at) => {
                let data_start = span_within(block, data)?.start;
                let (start, end) = (data_start + at.start, data_start + at.end);
                let mut out = BytesMut::with_capacity(block.len() + usage.len());
                out.put_slice(&block[..start]);
                out.put_slice(&usage);
                out.put_slice(&block[end..]);
                Some(out.freeze())
            }
            // Read leniently: the usage's place is unknown, so the event is written anew, under
            // the type it was read as (the data's `type` is the upstream's text: written into
            // the framing, it could name another event or end this one).
            None => {
                let mut whole: Value = serde_json::from_slice(data).ok()?;
                whole["response"]["usage"] = serde_json::from_slice(&usage).ok()?;
                Some(Bytes::from(format!("event: {kind}\ndata: {whole}")))
            }
        }
    }
}

/// The `response.id` of an event, read no further than the id. `response.created` carries the
/// whole Response object, which echoes the request's instructions and tools (tens of KB for a
/// Codex turn) after the id the Responses API writes first; the id is all the relay needs of it,
/// and the event is on the way to the client's first byte. Other keys before the id, wherever
/// they are, are skipped as JSON, so the answer is a full decode's (but for a repeated `id`:
/// the first counts here).
pub fn response_id(data: &[u8]) -> Option<String> {
    let mut id = None;
    let seek = Seek {
        key: Key::Response,
        id: &mut id,
    };
    // Stopping at the id leaves the rest unread, which serde_json reports as an error once the
    // visitors return: the id found is kept either way.
    let _ = seek.deserialize(&mut serde_json::Deserializer::from_slice(data));
    id
}

/// The keys `response_id` looks for.
#[derive(Deserialize, PartialEq)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Response,
    Id,
    #[serde(other)]
    Other,
}

/// Skips through an object to one key: `response` in the event, then `id` in the response,
/// where reading stops.
struct Seek<'a> {
    key: Key,
    id: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key != self.key {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if key == Key::Response {
                let seek = Seek {
                    key: Key::Id,
                    id: self.id,
                };
                return map.next_value_seed(seek);
            }
            // A string, or no id (as a full decode reads `null`, a number or an object).
            if let Value::String(id) = map.next_value()? {
                *self.id = Some(id);
            }
            return Ok(());
        }
        Ok(())
    }
}

/// Where `part`, a slice borrowed from `whole`, lies within it.
fn span_within(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTIAL: &str = r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","output":[{"type":"message","content":[{"type":"output_text","text":"caf\u00e9 \"ok\""}]}],"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7},"end_turn":true}}"#;

    #[test]
    fn only_the_usage_is_rewritten_and_every_other_byte_is_kept() {
        let block = format!("event: response.completed\ndata: {PARTIAL}");
        let data = &block.as_bytes()[block.find('{').unwrap()..];
        let fields = ResponseFields::read(data).unwrap();
        assert_eq!(fields.id.as_deref(), Some("resp_1"));
        let out = fields
            .with_complete_usage("response.completed", block.as_bytes(), data)
            .unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        let (before, after) = PARTIAL.split_once(r#""usage":"#).unwrap();
        let after = &after[after.find('}').unwrap() + 1..];
        assert!(out.starts_with(&format!("event: response.completed\ndata: {before}")));
        assert!(out.ends_with(after), "{out}");
        let data: Value = serde_json::from_str(out.split_once("data: ").unwrap().1).unwrap();
        let usage = &data["response"]["usage"];
        assert_eq!(usage["input_tokens_details"]["cache_write_tokens"], 0);
        assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
        assert_eq!(usage["total_tokens"], 7);
    }

    #[test]
    fn a_complete_or_missing_usage_leaves_the_event_alone() {
        let complete = r#"{"response":{"usage":{"input_tokens":1,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":1,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":2}}}"#;
        for data in [
            complete,
            r#"{"response":{"id":"r"}}"#,
            r#"{"response":{"usage":null}}"#,
        ] {
            let fields = ResponseFields::read(data.as_bytes()).unwrap();
            assert_eq!(
                fields.with_complete_usage("response.completed", data.as_bytes(), data.as_bytes()),
                None
            );
        }
    }

    #[test]
    fn the_response_id_is_read_as_a_full_decode_reads_it() {
        for data in [
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","instructions":"x"}}"#,
            r#"{"response":{"object":"response","tools":[{"id":"tool"}],"id":"resp_1"}}"#,
            r#"{"type":"x","metadata":{"response":{"id":"inner"}},"response":{"id":"resp_1"}}"#,
            r#"{"type":"x","response":{"id":7}}"#,
            r#"{"type":"x","response":{"id":null,"usage":null}}"#,
            r#"{"type":"x","response":null}"#,
            r#"{"type":"x"}"#,
            r#"{"type":"x","response":{"id":"caf\u00e9"}}"#,
            r#"["not an object"]"#,
            r#"not json"#,
        ] {
            let full = ResponseFields::read(data.as_bytes()).and_then(|f| f.id);
            assert_eq!(response_id(data.as_bytes()), full, "{data}");
        }
        assert_eq!(
            response_id(br#"{"response":{"object":"response","id":"resp_1"}}"#).as_deref(),
            Some("resp_1")
        );
    }

    #[test]
    fn reading_the_response_id_stops_at_the_id() {
        // What follows the id is never read: here it is not even JSON.
        let data = br#"{"type":"response.created","response":{"id":"resp_1","instructions":"#;
        assert_eq!(response_id(data).as_deref(), Some("resp_1"));
        assert_eq!(ResponseFields::read(data), None);
        // Nor would a later key change the answer.
        let data = br#"{"response":{"id":"resp_1","output":[],"id":"resp_2"}}"#;
        assert_eq!(response_id(data).as_deref(), Some("resp_1"));
    }

    #[test]
    fn odd_types_are_read_leniently_and_written_anew() {
        let data = r#"{"type":"response.failed","response":{"id":7,"error":{"code":"server_is_overloaded"},"usage":{"input_tokens":1}}}"#;
        let fields = ResponseFields::read(data.as_bytes()).unwrap();
        assert_eq!(fields.id, None);
        assert_eq!(fields.error_code.as_deref(), Some("server_is_overloaded"));
        let out = fields
            .with_complete_usage("response.failed", data.as_bytes(), data.as_bytes())
            .unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        assert!(out.starts_with("event: response.failed\ndata: "));
        let data: Value = serde_json::from_str(out.split_once("data: ").unwrap().1).unwrap();
        assert_eq!(data["response"]["usage"]["total_tokens"], 1);
        assert_eq!(data["response"]["id"], 7);
    }
}
