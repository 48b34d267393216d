//! The content a row's hash seals: `{"seq":…` then the record's fields in declaration order,
//! those absent left out — byte for byte what serde_json writes for the record flattened behind
//! `seq`, which every release has sealed (`Row` reads it back through serde).
//!
//! Rendered by the writer from a row packed on the thread that recorded it (`prepared.rs`),
//! field by field rather than through serde: the keys are constants, and a value is copied as it
//! is unless it holds a character JSON escapes; only then does serde_json escape it (its string
//! loop looks up every byte of every key and value in its escape table: once a third of the
//! writer's time, `docs/performance.md`).

use super::prepared::{Prepared, Value};
#[cfg(test)]
use super::record::{ActorKind, Record};

/// Writes the start of a row's content, its place: `{"seq":N`.
pub(super) fn write_place(out: &mut Vec<u8>, seq: i64) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
}

/// Writes the rest of a row's content after its place: `,"at_ms":…}`.
pub(super) fn write_fields(out: &mut Vec<u8>, row: &Prepared) {
    out.extend_from_slice(b",\"at_ms\":");
    out.extend_from_slice(itoa::Buffer::new().format(row.at_ms()).as_bytes());
    for (field, value) in row.fields() {
        out.extend_from_slice(field.key().as_bytes());
        match value {
            Value::Text(text) => string(out, text),
            Value::Texts(mut texts) => {
                out.push(b'[');
                if let Some(first) = texts.next() {
                    string(out, first);
                }
                for text in texts {
                    out.push(b',');
                    string(out, text);
                }
                out.push(b']');
            }
            Value::Number(number) => {
                out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
            }
            Value::Bool(value) => out.extend_from_slice(if value { b"true" } else { b"false" }),
        }
    }
    out.push(b'}');
}

/// A JSON string: copied between its quotes when nothing in it needs escaping (nearly every
/// value: ids, names, addresses), else escaped by serde_json.
fn string(out: &mut Vec<u8>, text: &[u8]) {
    // Folded without stopping at the first byte that is not plain, so that the compiler
    // checks 16 bytes an instruction; nearly every text is plain throughout.
    if text.iter().fold(true, |all, byte| all & plain(*byte)) {
        out.push(b'"');
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    // Packed from `&str`s, so always text; were it not, its bytes would be written as text
    // with the invalid ones replaced, still valid JSON.
    let text = String::from_utf8_lossy(text);
    // Writing a string into a `Vec` does not fail.
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
}

/// A byte JSON writes as it is inside a string: all but the control characters, the quote and
/// the backslash (serde_json escapes exactly those, and nothing beyond ASCII).
fn plain(byte: u8) -> bool {
    byte >= 0x20 && byte != b'"' && byte != b'\\'
}

/// The canonical content of `record` at `seq`, as text.
#[cfg(test)]
pub(super) fn canonical(seq: i64, record: &Record) -> Result<String, std::string::FromUtf8Error> {
    let mut out = Vec::new();
    write_place(&mut out, seq);
    write_fields(&mut out, &Prepared::of(record));
    String::from_utf8(out)
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
    use compact_str::CompactString;
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
