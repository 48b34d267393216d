//! A Responses request body as the relay handles it: the top-level fields kept as the client
//! sent them (raw JSON, in order), only the few the relay reads decoded, only the few it changes
//! re-encoded. A Codex turn carries the whole conversation — tens to hundreds of KB — and
//! building a JSON tree of it to change `model` and `stream` cost more than everything else the
//! relay does per request; now its bytes are checked, scanned once for what the relay needs to
//! know of its items, and copied.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why a body is not a request object.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON at all (the parser's message).
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    NotAnObject,
}

/// The JSON kind of a raw value, from its first byte (serde_json validated the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

pub fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

/// The request's top-level fields, in order. A key sent twice keeps its first place and its last
/// value, as a JSON object read into a map would.
pub struct RequestBody<'a> {
    fields: Vec<(String, Cow<'a, RawValue>)>,
    /// The fields still say exactly what the body sent (no key repeated, nothing set or removed):
    /// the body itself can go on, uncopied.
    as_sent: bool,
}

impl<'a> RequestBody<'a> {
    pub fn parse(body: &'a [u8]) -> Result<RequestBody<'a>, BodyError> {
        let starts_an_object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !starts_an_object {
            return match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(BodyError::NotAnObject),
                Err(e) => Err(BodyError::NotJson(e)),
            };
        }
        serde_json::from_slice::<Fields<'a>>(body)
            .map(|Fields { fields, repeated }| RequestBody {
                fields,
                as_sent: !repeated,
            })
            .map_err(BodyError::NotJson)
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The field, unless absent or `null`.
    pub fn get_present(&self, key: &str) -> Option<&RawValue> {
        self.get(key).filter(|v| kind(v) != Kind::Null)
    }

    /// A string field, decoded; `None` when absent or not a string.
    pub fn string(&self, key: &str) -> Option<String> {
        let raw = self.get(key).filter(|v| kind(v) == Kind::String)?;
        serde_json::from_str(raw.get()).ok()
    }

    /// A boolean field; `None` when absent or not a boolean.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)?.get() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// Sets `key` to `value` encoded: in place when present, else last.
    pub fn set(&mut self, key: &str, value: &impl Serialize) {
        // Encoding a string, a bool or a list of strings cannot fail; were it to, the field is
        // left as the client sent it rather than forwarded broken.
        let Ok(raw) = serde_json::value::to_raw_value(value) else {
            return;
        };
        self.set_raw(key, raw);
    }

    /// Sets `key` to `raw`, JSON text already encoded: in place when present, else last.
    pub fn set_raw(&mut self, key: &str, raw: Box<RawValue>) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            // Setting what is already there changes nothing (a model named by its own slug).
            Some((_, slot)) if slot.get() == raw.get() => {}
            Some((_, slot)) => {
                *slot = Cow::Owned(raw);
                self.as_sent = false;
            }
            None => {
                self.fields.push((key.to_owned(), Cow::Owned(raw)));
                self.as_sent = false;
            }
        }
    }

    /// Removes `key`; the others keep their order.
    pub fn remove(&mut self, key: &str) {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k != key);
        self.as_sent &= self.fields.len() == before;
    }

    /// The body to send on: `sent` itself (the buffer it was parsed from, shared, not copied)
    /// while nothing changed — a Codex turn, which is the whole conversation, goes on as it came —
    /// else the fields as they are now ([`RequestBody::to_vec`]).
    pub fn forward(&self, sent: &Bytes) -> Bytes {
        if self.as_sent {
            sent.clone()
        } else {
            Bytes::from(self.to_vec())
        }
    }

    /// The body to send on: the fields as they are now, each value byte for byte.
    pub fn to_vec(&self) -> Vec<u8> {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // A key came from valid JSON, so it encodes; the escaping is serde_json's.
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// The top level read as `(key, raw value)` pairs; `repeated` when a key came more than once.
struct Fields<'a> {
    fields: Vec<(String, Cow<'a, RawValue>)>,
    repeated: bool,
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields: Vec<(String, Cow<'de, RawValue>)> = Vec::new();
                let mut repeated = false;
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match fields.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, slot)) => {
                            *slot = Cow::Borrowed(value);
                            repeated = true;
                        }
                        None => fields.push((key, Cow::Borrowed(value))),
                    }
                }
                Ok(Fields { fields, repeated })
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// What the relay needs to know of `input`'s items, found in one pass without decoding them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InputFacts {
    /// `input` is a string, or an item is a message the backend would refuse as it is (no
    /// `type`, a `system` role, or string content): relaxed mode rewrites it.
    pub needs_rewrite: bool,
    /// An item carries `encrypted_content` (reasoning only the account that wrote it can read).
    pub carries_encrypted: bool,
    /// An item refers to one the backend would have to have stored: an `item_reference`, or a
    /// reasoning item without its `encrypted_content` (`recall` expands them).
    pub refers_back: bool,
}

/// The fields of an item that matter here. A field present as `null` is `Some("null")`, as the
/// item's JSON object would see it.
#[derive(Default)]
struct ItemProbe<'a> {
    role: Option<&'a RawValue>,
    kind: Option<&'a RawValue>,
    content: Option<&'a RawValue>,
    encrypted_content: Option<&'a RawValue>,
}

/// An element of `input`: an object is probed for the fields above and every other field is
/// skipped unread; anything else is skipped. One pass, nothing allocated but the list.
struct Item<'a>(Option<ItemProbe<'a>>);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ItemKey {
    Role,
    #[serde(rename = "type")]
    Kind,
    Content,
    EncryptedContent,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an input item")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Item<'de>, M::Error> {
                let mut probe = ItemProbe::default();
                while let Some(key) = map.next_key::<ItemKey>()? {
                    let slot = match key {
                        ItemKey::Role => &mut probe.role,
                        ItemKey::Kind => &mut probe.kind,
                        ItemKey::Content => &mut probe.content,
                        ItemKey::EncryptedContent => &mut probe.encrypted_content,
                        ItemKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(Item(Some(probe)))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Item<'de>, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item(None))
            }

            fn visit_str<E>(self, _: &str) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }

            fn visit_i64<E>(self, _: i64) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }

            fn visit_u64<E>(self, _: u64) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }

            fn visit_unit<E>(self) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

impl InputFacts {
    pub fn of(input: Option<&RawValue>) -> InputFacts {
        let Some(input) = input else {
            return InputFacts::default();
        };
        match kind(input) {
            Kind::String => InputFacts {
                needs_rewrite: true,
                ..InputFacts::default()
            },
            // The top level was validated already; a list that is not one has no facts.
            Kind::Array => serde_json::from_str::<Folded>(input.get())
                .map(|folded| folded.0)
                .unwrap_or_default(),
            _ => InputFacts::default(),
        }
    }

    fn add(&mut self, probe: &ItemProbe) {
        self.carries_encrypted |= probe
            .encrypted_content
            .is_some_and(|v| kind(v) != Kind::Null);
        self.needs_rewrite |= probe.needs_rewrite();
        self.refers_back |= probe.refers_back();
    }
}

/// `input`'s items folded into their facts as they are read: nothing is kept of an item.
struct Folded(InputFacts);

impl<'de> Deserialize<'de> for Folded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Folded;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of input items")
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Folded, S::Error> {
                let mut facts = InputFacts::default();
                while let Some(Item(probe)) = seq.next_element()? {
                    if let Some(probe) = probe {
                        facts.add(&probe);
                    }
                }
                Ok(Folded(facts))
            }
        }
        deserializer.deserialize_seq(ItemsVisitor)
    }
}

impl ItemProbe<'_> {
    fn refers_back(&self) -> bool {
        match self.kind.map(RawValue::get) {
            Some("\"item_reference\"") => true,
            Some("\"reasoning\"") => self.encrypted_content.is_none_or(|c| kind(c) == Kind::Null),
            _ => false,
        }
    }

    fn needs_rewrite(&self) -> bool {
        let Some(role) = self.role.filter(|r| kind(r) == Kind::String) else {
            return false;
        };
        self.kind.is_none()
            || role.get() == "\"system\""
            || self.content.is_some_and(|c| kind(c) == Kind::String)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parsed(body: &[u8]) -> RequestBody<'_> {
        RequestBody::parse(body).unwrap()
    }

    fn reencoded(body: &RequestBody) -> Value {
        serde_json::from_slice(&body.to_vec()).unwrap()
    }

    #[test]
    fn fields_are_copied_byte_for_byte_in_order() {
        let text = br#" {"zeta": [1, 2.50, "\u00e9"], "model":"m","input" :{"a" : null}} "#;
        let body = parsed(text);
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            r#"{"zeta":[1, 2.50, "\u00e9"],"model":"m","input":{"a" : null}}"#
        );
    }

    #[test]
    fn a_body_nothing_changed_goes_on_as_the_same_buffer() {
        let sent = Bytes::from_static(br#"{"model": "gpt-5.5", "stream": true, "a": [1]}"#);
        let mut body = parsed(&sent);
        // Setting what is there already is no change.
        body.set("model", &"gpt-5.5");
        body.set("stream", &true);
        body.remove("absent");
        let forwarded = body.forward(&sent);
        assert_eq!(forwarded.as_ptr(), sent.as_ptr(), "shared, not copied");
        assert_eq!(forwarded, sent);
    }

    #[test]
    fn a_body_with_a_change_or_a_repeated_key_is_encoded_again() {
        let sent = Bytes::from_static(br#"{"model":"alias","stream":true}"#);
        type Change = fn(&mut RequestBody);
        let changes: [(&str, Change); 3] = [
            (r#"{"model":"gpt-5.5","stream":true}"#, |b| {
                b.set("model", &"gpt-5.5")
            }),
            (r#"{"model":"alias","stream":true,"store":false}"#, |b| {
                b.set("store", &false)
            }),
            (r#"{"model":"alias"}"#, |b| b.remove("stream")),
        ];
        for (expected, change) in changes {
            let mut body = parsed(&sent);
            change(&mut body);
            assert_eq!(body.forward(&sent), expected.as_bytes());
        }
        let repeated = Bytes::from_static(br#"{"model":"a","model":"b"}"#);
        let body = parsed(&repeated);
        assert_eq!(body.forward(&repeated), br#"{"model":"b"}"#.as_slice());
    }

    #[test]
    fn set_replaces_in_place_or_appends_and_remove_keeps_the_order() {
        let text = br#"{"a":1,"model":"m","b":2}"#;
        let mut body = parsed(text);
        body.set("model", &"gpt-5.5");
        body.set("stream", &true);
        body.remove("a");
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            r#"{"model":"gpt-5.5","b":2,"stream":true}"#
        );
    }

    #[test]
    fn a_key_sent_twice_keeps_its_place_and_its_last_value() {
        let body = parsed(br#"{"model":"a","x":1,"model":"b"}"#);
        assert_eq!(body.string("model").as_deref(), Some("b"));
        assert_eq!(reencoded(&body), json!({"model": "b", "x": 1}));
        assert_eq!(body.to_vec(), br#"{"model":"b","x":1}"#);
    }

    #[test]
    fn keys_with_escapes_are_read_and_written_back_escaped() {
        let body = parsed(br#"{"mo\u0064el":"m","quo\"te":1}"#);
        assert_eq!(body.string("model").as_deref(), Some("m"));
        assert_eq!(reencoded(&body), json!({"model": "m", "quo\"te": 1}));
    }

    #[test]
    fn not_json_and_not_an_object_are_told_apart() {
        for text in [&b"{\"a\":"[..], b"nope", b"", b"{\"a\":1} trailing"] {
            assert!(
                matches!(RequestBody::parse(text), Err(BodyError::NotJson(_))),
                "{text:?}"
            );
        }
        for text in [&b"[1,2]"[..], b" \"text\" ", b"3"] {
            assert!(
                matches!(RequestBody::parse(text), Err(BodyError::NotAnObject)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn typed_reads_see_kinds() {
        let body = parsed(br#"{"s":"x\ny","t":true,"f":false,"n":null,"num":1,"arr":[]}"#);
        assert_eq!(body.string("s").as_deref(), Some("x\ny"));
        assert_eq!(body.string("num"), None);
        assert_eq!(body.boolean("t"), Some(true));
        assert_eq!(body.boolean("f"), Some(false));
        assert_eq!(body.boolean("n"), None);
        assert!(body.get_present("n").is_none());
        assert_eq!(body.get("arr").map(kind), Some(Kind::Array));
        assert_eq!(body.get("num").map(kind), Some(Kind::Number));
    }

    #[test]
    fn input_facts_find_items_to_rewrite_and_encrypted_reasoning() {
        let facts = |input: Value| {
            let text = serde_json::to_vec(&json!({ "input": input })).unwrap();
            InputFacts::of(parsed(&text).get("input"))
        };
        let codex_turn = json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
            {"type": "function_call_output", "call_id": "c", "output": "ok"}
        ]);
        assert_eq!(
            facts(codex_turn),
            InputFacts {
                needs_rewrite: false,
                carries_encrypted: true,
                refers_back: false,
            }
        );
        assert!(facts(json!("hi")).needs_rewrite);
        assert!(
            facts(json!([{"role": "user", "content": [{"type": "input_text", "text": "q"}]}]))
                .needs_rewrite
        );
        assert!(facts(json!([{"type": "message", "role": "system", "content": []}])).needs_rewrite);
        assert!(facts(json!([{"type": "message", "role": "user", "content": "q"}])).needs_rewrite);
        // A `type` present as null is present, as in the item's object; no role, nothing to do.
        assert!(!facts(json!([{"type": null, "role": "user", "content": []}])).needs_rewrite);
        assert!(!facts(json!([{"type": "reasoning", "content": "x"}])).needs_rewrite);
        let unread = facts(json!([{"type": "reasoning", "encrypted_content": null}]));
        assert!(!unread.carries_encrypted);
        assert_eq!(facts(json!(42)), InputFacts::default());
        // Items that are not objects are skipped, whatever they hold.
        let mixed =
            facts(json!(["loose", 3, -1.5, true, null, [1, [2]], {"encrypted_content": "e"}]));
        assert!(mixed.carries_encrypted);
        assert!(!mixed.needs_rewrite);
        // A key written with escapes is the same key.
        let text =
            br#"{"input":[{"enc\u0072ypted_content":"e","r\u006fle":"system","type":"message"}]}"#;
        let escaped = InputFacts::of(parsed(text).get("input"));
        assert!(escaped.carries_encrypted && escaped.needs_rewrite);
    }

    #[test]
    fn input_facts_find_references_to_items_the_backend_did_not_store() {
        let refers_back = |input: Value| {
            let text = serde_json::to_vec(&json!({ "input": input })).unwrap();
            InputFacts::of(parsed(&text).get("input")).refers_back
        };
        assert!(refers_back(
            json!([{"type": "item_reference", "id": "rs_1"}])
        ));
        assert!(refers_back(
            json!([{"type": "reasoning", "id": "rs_1", "summary": []}])
        ));
        assert!(refers_back(
            json!([{"type": "reasoning", "id": "rs_1", "encrypted_content": null}])
        ));
        assert!(!refers_back(
            json!([{"type": "reasoning", "id": "rs_1", "encrypted_content": "e"}])
        ));
        assert!(!refers_back(
            json!([{"type": "message", "role": "user", "content": "item_reference"}])
        ));
        assert!(!refers_back(json!("item_reference")));
    }
}
