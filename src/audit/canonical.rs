//! The content a row's hash seals: `{"seq":…` then the record's fields in declaration order,
//! those absent left out — byte for byte what serde_json writes for the record flattened behind
//! `seq`, which every release has sealed (`Row` reads it back through serde).
//!
//! Written field by field rather than through serde: the writer thread spent about a third of its
//! time in serde_json's string loop, which looks up every byte of every key and value in its
//! escape table (`docs/performance.md`). Here the keys are constants, and a value is copied as it
//! is unless it holds a character JSON escapes; only then does serde_json escape it.

use compact_str::CompactString;
use serde_json::Error;

use super::record::{ActorKind, Record};

/// Writes one field through `Object`'s method: its key, `,"name":`, a constant made of the
/// binding's name (which is the field's), and its value, `name` or an expression beginning with
/// it.
macro_rules! field {
    ($object:ident . $write:ident ($name:ident $($value:tt)*)) => {
        $object.$write(concat!(",\"", stringify!($name), "\":"), $name $($value)*)?
    };
}

/// Writes the content a row's hash seals onto `out`: its place, then its fields.
#[cfg(test)]
pub(super) fn write_canonical(out: &mut Vec<u8>, seq: i64, record: &Record) -> Result<(), Error> {
    write_place(out, seq);
    write_fields(out, record)
}

/// Writes the start of a row's content, its place: `{"seq":N`.
pub(super) fn write_place(out: &mut Vec<u8>, seq: i64) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
}

/// Writes the rest of a row's content after its place, `,"at_ms":…}` (a row is prepared so
/// before it has a place: `prepared.rs`).
pub(super) fn write_fields(out: &mut Vec<u8>, record: &Record) -> Result<(), Error> {
    // Every field named, none left to `..`: a field added to `Record` does not compile here until
    // it is written (in declaration order, as serde writes it; a test compares the bytes).
    let Record {
        at_ms,
        kind,
        action,
        request_id,
        trace_id,
        tenant_id,
        key_id,
        key_name,
        client_addr,
        client_name,
        client_version,
        endpoint,
        model_requested,
        model_served,
        account_id,
        accounts_tried,
        status,
        error_code,
        stream,
        stream_outcome,
        input_tokens,
        output_tokens,
        duration_ms,
        actor_kind,
        actor_id,
        actor_name,
        target,
        result,
        capture_id,
    } = record;
    let mut object = Object(out);
    field!(object.number(at_ms));
    field!(object.text(kind.as_str()));
    field!(object.text(action));
    field!(object.some_text(request_id.as_deref()));
    field!(object.some_text(trace_id.as_deref()));
    field!(object.some_text(tenant_id.as_deref()));
    field!(object.some_text(key_id.as_deref()));
    field!(object.some_text(key_name.as_deref()));
    field!(object.some_text(client_addr.as_deref()));
    field!(object.some_text(client_name.as_deref()));
    field!(object.some_text(client_version.as_deref()));
    field!(object.some_text(endpoint.as_deref()));
    field!(object.some_text(model_requested.as_deref()));
    field!(object.some_text(model_served.as_deref()));
    field!(object.some_text(account_id.as_deref()));
    field!(object.texts(accounts_tried));
    field!(object.some_number(status));
    field!(object.some_text(error_code.as_deref()));
    field!(object.some_bool(stream));
    field!(object.some_text(stream_outcome.as_deref()));
    field!(object.some_number(input_tokens));
    field!(object.some_number(output_tokens));
    field!(object.some_number(duration_ms));
    field!(object.some_text(actor_kind.map(ActorKind::as_str)));
    field!(object.some_text(actor_id.as_deref()));
    field!(object.some_text(actor_name.as_deref()));
    field!(object.some_text(target.as_deref()));
    field!(object.some_text(result.as_deref()));
    field!(object.some_text(capture_id.as_deref()));
    object.0.push(b'}');
    Ok(())
}

/// The object being written: each method writes a field (left out when absent, as serde's
/// `skip_serializing_if` leaves it out).
struct Object<'a>(&'a mut Vec<u8>);

impl Object<'_> {
    fn number<N: itoa::Integer + Copy>(&mut self, key: &str, number: &N) -> Result<(), Error> {
        self.0.extend_from_slice(key.as_bytes());
        self.0
            .extend_from_slice(itoa::Buffer::new().format(*number).as_bytes());
        Ok(())
    }

    fn some_number<N>(&mut self, key: &str, number: &Option<N>) -> Result<(), Error>
    where
        N: itoa::Integer + Copy,
    {
        match number {
            Some(number) => self.number(key, number),
            None => Ok(()),
        }
    }

    fn some_bool(&mut self, key: &str, value: &Option<bool>) -> Result<(), Error> {
        if let Some(value) = value {
            self.0.extend_from_slice(key.as_bytes());
            self.0
                .extend_from_slice(if *value { b"true" } else { b"false" });
        }
        Ok(())
    }

    fn text(&mut self, key: &str, text: &str) -> Result<(), Error> {
        self.0.extend_from_slice(key.as_bytes());
        self.string(text)
    }

    fn some_text(&mut self, key: &str, text: Option<&str>) -> Result<(), Error> {
        match text {
            Some(text) => self.text(key, text),
            None => Ok(()),
        }
    }

    /// A list of texts, left out when empty.
    fn texts(&mut self, key: &str, texts: &[CompactString]) -> Result<(), Error> {
        let Some((first, rest)) = texts.split_first() else {
            return Ok(());
        };
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(b'[');
        self.string(first)?;
        for text in rest {
            self.0.push(b',');
            self.string(text)?;
        }
        self.0.push(b']');
        Ok(())
    }

    /// A JSON string: copied between its quotes when nothing in it needs escaping (nearly every
    /// value: ids, names, addresses), else escaped by serde_json.
    fn string(&mut self, text: &str) -> Result<(), Error> {
        // Folded without stopping at the first byte that is not plain, so that the compiler
        // checks 16 bytes an instruction; nearly every text is plain throughout.
        if text.bytes().fold(true, |all, byte| all & plain(byte)) {
            self.0.push(b'"');
            self.0.extend_from_slice(text.as_bytes());
            self.0.push(b'"');
            Ok(())
        } else {
            serde_json::to_writer(&mut *self.0, text)
        }
    }
}

/// A byte JSON writes as it is inside a string: all but the control characters, the quote and
/// the backslash (serde_json escapes exactly those, and nothing beyond ASCII).
fn plain(byte: u8) -> bool {
    byte >= 0x20 && byte != b'"' && byte != b'\\'
}

/// The canonical content of `record` at `seq`, as text.
#[cfg(test)]
pub(super) fn canonical(seq: i64, record: &Record) -> Result<String, Error> {
    let mut out = Vec::new();
    write_canonical(&mut out, seq, record)?;
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

/// A record with every field set (tests: the canonical content, a prepared row).
#[cfg(test)]
pub(super) fn every_field() -> Record {
    use super::record::Kind;
    Record {
        at_ms: 1_700_000_000_123,
        kind: Kind::Request,
        action: "responses.create".into(),
        request_id: Some("req_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b".into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        tenant_id: Some("ten_1".into()),
        key_id: Some("key_1".into()),
        key_name: Some("ci".into()),
        client_addr: Some("10.0.0.7".into()),
        client_name: Some("codex_cli_rs".into()),
        client_version: Some("0.50.0".into()),
        endpoint: Some("POST /v1/responses".into()),
        model_requested: Some("gpt-5".into()),
        model_served: Some("gpt-5-codex".into()),
        account_id: Some("acct_2".into()),
        accounts_tried: vec!["acct_1".into(), "acct_2".into()],
        status: Some(200),
        error_code: Some("upstream_error".into()),
        stream: Some(true),
        stream_outcome: Some("completed".into()),
        input_tokens: Some(12),
        output_tokens: Some(34),
        duration_ms: Some(56),
        actor_kind: Some(ActorKind::AdminToken),
        actor_id: Some("adm_1".into()),
        actor_name: Some("ops".into()),
        target: Some("key_9".into()),
        result: Some("ok".into()),
        capture_id: Some("cap_1".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::audit::{Kind, Row};

    #[test]
    fn the_canonical_content_starts_with_the_place_and_leaves_out_what_is_absent() {
        let record = Record {
            at_ms: 5,
            kind: Kind::Admin,
            action: "key.create".into(),
            target: Some("key_1".into()),
            ..Record::default()
        };
        let text = canonical(7, &record).unwrap();
        assert_eq!(
            text,
            r#"{"seq":7,"at_ms":5,"kind":"admin","action":"key.create","target":"key_1"}"#
        );
        let back: Row = serde_json::from_str(&text).unwrap();
        assert_eq!(back.record, record);
    }

    /// What serde_json writes for `record` flattened behind `seq`: what every release has sealed.
    fn flattened(seq: i64, record: &Record) -> String {
        #[derive(Serialize)]
        struct Flattened<'a> {
            seq: i64,
            #[serde(flatten)]
            record: &'a Record,
        }
        serde_json::to_string(&Flattened { seq, record }).unwrap()
    }

    /// Each field left out in turn (a field skipped, or not, where serde would not).
    fn clearings() -> Vec<fn(&mut Record)> {
        vec![
            |r| r.request_id = None,
            |r| r.trace_id = None,
            |r| r.tenant_id = None,
            |r| r.key_id = None,
            |r| r.key_name = None,
            |r| r.client_addr = None,
            |r| r.client_name = None,
            |r| r.client_version = None,
            |r| r.endpoint = None,
            |r| r.model_requested = None,
            |r| r.model_served = None,
            |r| r.account_id = None,
            |r| r.accounts_tried.clear(),
            |r| r.accounts_tried.truncate(1),
            |r| r.status = None,
            |r| r.error_code = None,
            |r| r.stream = None,
            |r| r.stream = Some(false),
            |r| r.stream_outcome = None,
            |r| r.input_tokens = None,
            |r| r.output_tokens = None,
            |r| r.duration_ms = None,
            |r| r.actor_kind = None,
            |r| r.actor_id = None,
            |r| r.actor_name = None,
            |r| r.target = None,
            |r| r.result = None,
            |r| r.capture_id = None,
        ]
    }

    /// A row written now must read as every earlier release sealed it, byte for byte, or a
    /// trail's hashes would depend on the release that wrote them.
    #[test]
    fn the_canonical_content_is_the_flattened_record_byte_for_byte() {
        let mut records = vec![every_field(), Record::default()];
        for clear in clearings() {
            let mut record = every_field();
            clear(&mut record);
            records.push(record);
        }
        for kind in [ActorKind::Cli, ActorKind::Relay, ActorKind::Unauthenticated] {
            records.push(Record {
                kind: Kind::Admin,
                actor_kind: Some(kind),
                ..Record::default()
            });
        }
        records.push(Record {
            at_ms: i64::MIN,
            status: Some(u16::MAX),
            input_tokens: Some(u64::MAX),
            output_tokens: Some(0),
            ..every_field()
        });
        for seq in [1, -3, 0, i64::MAX] {
            for record in &records {
                assert_eq!(canonical(seq, record).unwrap(), flattened(seq, record));
            }
        }
    }

    /// Every ASCII character, alone and among others, and text beyond ASCII, in every kind of
    /// text field: escaped exactly where serde_json escapes.
    #[test]
    fn texts_are_escaped_as_serde_json_escapes_them() {
        let mut texts: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        texts.push((0u8..=0x7f).map(char::from).collect());
        texts.extend(
            [
                "",
                "ci \"quoted\" \\ back\nline \u{1} é",
                "tab\there\r\u{8}\u{c}\u{1f}\u{7f}",
                "ünïcødé 名前 🚀",
                "/slash/ is not escaped",
            ]
            .map(String::from),
        );
        for text in &texts {
            let text = CompactString::from(text.as_str());
            let record = Record {
                action: text.clone(),
                key_name: Some(text.clone()),
                accounts_tried: vec![text.clone(), "acct_1".into(), text.clone()],
                actor_name: Some(text.clone()),
                ..every_field()
            };
            assert_eq!(
                canonical(9, &record).unwrap(),
                flattened(9, &record),
                "{text:?}"
            );
        }
    }
}
