//! Adapting a Responses request to what the Codex backend accepts. OpenAI SDK callers send what
//! the public API takes; the backend rejects some of it (the issue trackers of other Codex relays
//! report 400s for `max_output_tokens`, sampling parameters, `store:true`, `stream:false`, a
//! string `input` and the `system` role). `relaxed` (default) rewrites those parts, and asks
//! for encrypted reasoning so that it can be replayed; `strict`
//! forwards the body as the client sent it.

use serde_json::{json, Value};

use crate::request_body::{kind, InputFacts, Kind, RequestBody};
use crate::settings::CompatMode;

/// Parameters the Codex backend rejects; relaxed mode drops them.
pub const DROPPED: [&str; 6] = [
    "max_output_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "metadata",
];

/// Rewrites `body` in place for the upstream; `input` is what a scan of its items found. Only
/// the fields changed are re-encoded — `input` only when an item has to change.
pub fn normalize(
    body: &mut RequestBody,
    input: &InputFacts,
    mode: CompatMode,
    default_instructions: &str,
) {
    if mode == CompatMode::Strict {
        return;
    }
    body.set("stream", &true);
    body.set("store", &false);
    for key in DROPPED {
        body.remove(key);
    }
    if input.needs_rewrite {
        let rewritten = body
            .get("input")
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .map(|mut value| {
                normalize_input(&mut value);
                value
            });
        if let Some(value) = rewritten {
            body.set("input", &value);
        }
    }
    let has_instructions = body
        .get("instructions")
        .is_some_and(|raw| kind(raw) == Kind::String && raw.get() != "\"\"");
    if !has_instructions {
        body.remove("instructions");
        if !default_instructions.is_empty() {
            body.set("instructions", &default_instructions);
        }
    }
    // The relay forces `store: false`, so reasoning can only be replayed (by the client, or by
    // `recall` expanding a reference) if it comes back encrypted: asked for on every request,
    // as the Codex CLI does, whether or not the client set `reasoning`.
    request_encrypted_reasoning(body);
}

/// A string becomes one user message; messages get their `type`, string content becomes a
/// content list, and `system` becomes `developer`.
fn normalize_input(input: &mut Value) {
    if let Value::String(text) = input {
        *input = json!([user_message(std::mem::take(text))]);
        return;
    }
    let Value::Array(items) = input else {
        return;
    };
    for item in items.iter_mut().filter_map(Value::as_object_mut) {
        let Some(role) = item.get("role").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        if item.get("type").is_none() {
            item.insert("type".into(), json!("message"));
        }
        if role == "system" {
            item.insert("role".into(), json!("developer"));
        }
        if let Some(Value::String(text)) = item.get_mut("content") {
            let part = if role == "assistant" {
                "output_text"
            } else {
                "input_text"
            };
            let text = std::mem::take(text);
            item.insert("content".into(), json!([{"type": part, "text": text}]));
        }
    }
}

fn user_message(text: String) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// Reasoning can only be replayed statelessly (store is false) if it comes back encrypted.
fn request_encrypted_reasoning(body: &mut RequestBody) {
    const ENCRYPTED: &str = "reasoning.encrypted_content";
    let include = body
        .get("include")
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
    match include {
        Some(Value::Array(mut list)) => {
            if !list.iter().any(|v| v == ENCRYPTED) {
                list.push(json!(ENCRYPTED));
                body.set("include", &list);
            }
        }
        _ => body.set("include", &[ENCRYPTED]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(body: Value, mode: CompatMode, default_instructions: &str) -> Value {
        let text = serde_json::to_vec(&body).unwrap();
        let mut request = RequestBody::parse(&text).unwrap();
        let input = InputFacts::of(request.get("input"));
        normalize(&mut request, &input, mode, default_instructions);
        serde_json::from_slice(&request.to_vec()).unwrap()
    }

    fn relaxed(body: Value) -> Value {
        normalized(body, CompatMode::Relaxed, "")
    }

    #[test]
    fn an_sdk_request_is_made_acceptable() {
        let body = relaxed(json!({
            "model": "gpt-5.5", "input": "hi", "stream": false, "store": true,
            "max_output_tokens": 5, "temperature": 0.2, "top_p": 1, "instructions": "be brief"
        }));
        assert_eq!(body["stream"], true);
        assert_eq!(body["store"], false);
        assert_eq!(body["input"][0]["content"][0]["text"], "hi");
        assert_eq!(body["input"][0]["type"], "message");
        assert_eq!(body["instructions"], "be brief");
        for dropped in ["max_output_tokens", "temperature", "top_p"] {
            assert!(body.get(dropped).is_none(), "{dropped}");
        }
    }

    #[test]
    fn system_messages_become_developer_messages() {
        let body = relaxed(json!({"model": "m", "input": [
            {"role": "system", "content": "rules"},
            {"role": "assistant", "content": "earlier answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]}
        ]}));
        assert_eq!(body["input"][0]["role"], "developer");
        assert_eq!(body["input"][0]["content"][0]["type"], "input_text");
        assert_eq!(body["input"][1]["content"][0]["type"], "output_text");
        assert_eq!(body["input"][2]["content"][0]["text"], "q");
    }

    #[test]
    fn encrypted_reasoning_is_asked_for_once_on_every_relaxed_request() {
        let body = relaxed(
            json!({"model": "m", "input": [], "reasoning": {"effort": "low"},
                                  "include": ["reasoning.encrypted_content"]}),
        );
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        let body = relaxed(json!({"model": "m", "input": [], "reasoning": {"effort": "low"}}));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        // Without `reasoning` too (the model reasons by default): what `store: false` needs.
        let body = relaxed(json!({"model": "m", "input": [], "reasoning": null}));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        let body = relaxed(
            json!({"model": "m", "input": [], "include": ["message.output_text.logprobs"]}),
        );
        assert_eq!(
            body["include"],
            json!([
                "message.output_text.logprobs",
                "reasoning.encrypted_content"
            ])
        );
        let body = normalized(json!({"model": "m", "input": []}), CompatMode::Strict, "");
        assert!(
            body.get("include").is_none(),
            "strict mode forwards as sent"
        );
    }

    #[test]
    fn empty_instructions_are_dropped_or_supplied() {
        let body = relaxed(json!({"model": "m", "input": [], "instructions": ""}));
        assert!(body.get("instructions").is_none());
        let body = normalized(
            json!({"model": "m", "input": []}),
            CompatMode::Relaxed,
            "You are Codex.",
        );
        assert_eq!(body["instructions"], "You are Codex.");
    }

    #[test]
    fn strict_mode_forwards_as_is_and_field_order_is_kept() {
        let original = json!({"zeta": 1, "model": "m", "input": "hi", "stream": false});
        let forwarded = normalized(original.clone(), CompatMode::Strict, "x");
        assert_eq!(forwarded, original);
        let body = relaxed(json!({"zeta": 1, "model": "m", "alpha": 2}));
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(&keys[..3], ["zeta", "model", "alpha"]);
    }
}
