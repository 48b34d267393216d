use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_actors::AccountId;
use serde_json::{json, Value};

use super::*;
use crate::recall::memory::tests::done_event;
use crate::recall::memory::{Events, Limits, Remembered};

const HOUR: Duration = Duration::from_secs(3600);

fn remembered(memory: &ResponseMemory, key: &str, at: Instant) {
    let forwarded = json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q1"}]}
    ]});
    let item = |index: u64, json: Value| done_event(index, &json.to_string());
    let response = Remembered {
        key: Arc::from(key),
        response_id: Some("resp_1".to_owned()),
        forwarded: Bytes::from(forwarded.to_string()),
        output: Events::copied(&[
            item(
                0,
                json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "enc_a"}),
            ),
            item(
                1,
                json!({"type": "message", "id": "msg_1", "role": "assistant"}),
            ),
        ]),
        account: AccountId::from("acct-a"),
        at,
    };
    let limits = Limits {
        ttl: HOUR,
        max_bytes: 1 << 20,
    };
    memory.remember(response, limits);
}

fn expanded(
    memory: &ResponseMemory,
    key: &str,
    previous: Option<&str>,
    input: Value,
) -> Result<(Value, Option<AccountId>), Unknown> {
    let raw = serde_json::value::to_raw_value(&input).unwrap();
    let now = Instant::now();
    let expanded = expand(memory, key, previous, Some(&raw), now, HOUR)?;
    let input = serde_json::from_str(expanded.input.get()).unwrap();
    Ok((input, expanded.written_by))
}

#[test]
fn references_become_the_items_they_refer_to() {
    let memory = ResponseMemory::default();
    remembered(&memory, "k", Instant::now());
    let input = json!([
        {"type": "item_reference", "id": "rs_1"},
        {"type": "item_reference", "id": "msg_1"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "user", "content": "q2"}
    ]);
    let (input, written_by) = expanded(&memory, "k", None, input).unwrap();
    assert_eq!(input[0]["encrypted_content"], "enc_a");
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(
        input[2]["encrypted_content"], "enc_a",
        "reasoning sent back without content"
    );
    assert_eq!(input[3]["content"], "q2");
    assert_eq!(written_by, Some(AccountId::from("acct-a")));
}

#[test]
fn a_previous_response_becomes_its_input_and_output_before_the_new_input() {
    let memory = ResponseMemory::default();
    remembered(&memory, "k", Instant::now());
    let new = json!([{"type": "message", "role": "user", "content": "q2"}]);
    let (input, _) = expanded(&memory, "k", Some("resp_1"), new).unwrap();
    let kinds: Vec<&str> = input
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "reasoning", "message", "message"]);
    assert_eq!(input[0]["content"][0]["text"], "q1");
    assert_eq!(input[3]["content"], "q2");
}

#[test]
fn what_another_key_was_served_is_unknown() {
    let memory = ResponseMemory::default();
    remembered(&memory, "k", Instant::now());
    let reference = json!([{"type": "item_reference", "id": "msg_1"}]);
    assert_eq!(
        expanded(&memory, "other", None, reference).unwrap_err(),
        Unknown::Item("msg_1".to_owned())
    );
    assert_eq!(
        expanded(&memory, "other", Some("resp_1"), json!([])).unwrap_err(),
        Unknown::Response("resp_1".to_owned())
    );
}

#[test]
fn items_that_refer_to_nothing_are_copied_byte_for_byte() {
    let memory = ResponseMemory::default();
    let text = r#"[{"type" : "message","content":"caf\u00e9 2.50"},{"type":"reasoning","encrypted_content":"x"}]"#;
    let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
    let out = expand(&memory, "k", None, Some(&raw), Instant::now(), HOUR).unwrap();
    assert_eq!(
        out.input.get(),
        r#"[{"type" : "message","content":"caf\u00e9 2.50"},{"type":"reasoning","encrypted_content":"x"}]"#
    );
    assert_eq!(out.written_by, None);
}

#[test]
fn replayed_encrypted_reasoning_names_the_account_that_wrote_it_for_its_key_only() {
    let memory = ResponseMemory::default();
    remembered(&memory, "k", Instant::now());
    let writer = |key: &str, input: Value| {
        let raw = serde_json::value::to_raw_value(&input).unwrap();
        writer_of_replayed(&memory, key, &raw, Instant::now(), HOUR)
    };
    let replayed =
        json!([{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc_a"}]);
    assert_eq!(
        writer("k", replayed.clone()),
        Some(AccountId::from("acct-a"))
    );
    assert_eq!(writer("other", replayed), None);
    let unknown = json!([{"type": "reasoning", "id": "rs_9", "encrypted_content": "enc_z"}]);
    assert_eq!(writer("k", unknown), None);
    // Without its content the item is a reference, which the expansion handles.
    let bare = json!([{"type": "reasoning", "id": "rs_1", "encrypted_content": null}]);
    assert_eq!(writer("k", bare), None);
}
