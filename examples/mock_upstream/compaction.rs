//! Remote compaction as the backend does it since the `/responses/compact` endpoint was retired:
//! an ordinary `POST /responses` stream whose `input` ends with `{"type":"compaction_trigger"}`
//! answers with exactly one output item, `{"type":"compaction","id":"cmp_…",
//! "encrypted_content":"…"}`, and a `response.completed` that carries it and the usage.

use serde_json::{json, Value};

use super::events::{Events, ResponseCtx};
use super::random_hex;

/// Tokens the mock reports for the compaction's own output.
const COMPACTION_TOKENS: u64 = 64;

/// True when the request asks for a compaction: its last input item is the trigger.
pub(super) fn is_requested(body: &Value) -> bool {
    body.get("input")
        .and_then(Value::as_array)
        .and_then(|input| input.last())
        .is_some_and(|item| item.get("type") == Some(&json!("compaction_trigger")))
}

/// The compaction's stream: created, in progress, the one `compaction` item, completed.
pub(super) fn events(ctx: &ResponseCtx) -> Vec<Value> {
    let mut events = Events::default();
    ctx.created_events(&mut events);
    let item = json!({
        "type": "compaction",
        "id": format!("cmp_{}", random_hex(16)),
        "encrypted_content": format!("enc_compacted_{}", random_hex(32)),
    });
    events.push(
        "response.output_item.added",
        json!({"output_index": 0, "item": item}),
    );
    events.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    let response = ctx.response("completed", vec![item], ctx.usage(COMPACTION_TOKENS));
    events.push("response.completed", json!({ "response": response }));
    events.into_vec()
}
