//! `POST /v1/responses/compact` for SDK callers. The backend retired its compact endpoint;
//! compaction is now an ordinary streamed `/responses` call whose input ends with
//! `{"type":"compaction_trigger"}` and whose output holds exactly one `compaction` item. The
//! handler (`responses.rs`) sends that call through the usual path; this module turns the
//! request into it and its answer into the documented compact shape: a `response.compaction`
//! object whose `output` is the input's user messages followed by the one compaction item.

use serde_json::{json, Value};

use super::error::ApiError;
use crate::request_body::RequestBody;

/// Turns `request` into the compaction call (the trigger appended, streamed, not stored) and
/// returns the user messages its answer keeps.
pub fn bridge(request: &mut RequestBody) -> Result<Vec<Value>, ApiError> {
    let input = request
        .get("input")
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
    let mut items = match input {
        Some(Value::Array(items)) => items,
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        _ => {
            return Err(ApiError::InvalidRequest {
                message: "Missing required parameter: 'input' (the conversation to compact)."
                    .to_owned(),
                param: Some("input"),
                code: Some("missing_required_parameter"),
            })
        }
    };
    let kept = items
        .iter()
        .filter(|item| item.get("role") == Some(&json!("user")))
        .cloned()
        .collect();
    items.push(json!({"type": "compaction_trigger"}));
    request.set("input", &items);
    request.set("stream", &true);
    request.set("store", &false);
    Ok(kept)
}

/// The compact answer from the compaction call's Response: `kept`, then its one `compaction`
/// item. An answer without exactly one is the upstream's failure.
pub fn compacted(response: Value, mut kept: Vec<Value>) -> Result<Value, ApiError> {
    let mut compactions = response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "compaction");
    let (Some(compaction), None) = (compactions.next(), compactions.next()) else {
        return Err(ApiError::UpstreamFailed(
            "the upstream did not answer with exactly one compaction item",
        ));
    };
    kept.push(compaction.clone());
    Ok(json!({
        "id": response["id"],
        "object": "response.compaction",
        "created_at": response["created_at"],
        "output": kept,
        "usage": response["usage"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_compaction_item_makes_an_answer() {
        let item = json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "x"});
        let kept = vec![json!({"role": "user", "content": "hi"})];
        let one = json!({"id": "resp_1", "created_at": 1, "output": [item], "usage": {"input_tokens": 1}});
        let answer = compacted(one, kept.clone()).unwrap();
        assert_eq!(answer["object"], "response.compaction");
        assert_eq!(answer["output"][0]["content"], "hi");
        assert_eq!(answer["output"][1]["id"], "cmp_1");
        let two = json!({"output": [item, item]});
        assert!(compacted(two, kept.clone()).is_err());
        assert!(compacted(json!({"output": []}), kept).is_err());
    }
}
