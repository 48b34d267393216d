//! The Responses stream events the mock sends, in the shape the Codex CLI and the OpenAI SDKs all
//! accept (their streaming helpers need `response.created` first, `output_item.added` before
//! content events and a final `response.completed`): each event carries `type` and a
//! `sequence_number` counting from 0; `response.created`/`in_progress` carry the full Response
//! object, `response.completed` carries it again with the output items and integer usage.
//!
//! A normal answer is a `reasoning` item (`output_index` 0; with `encrypted_content` only when
//! `include` asks for `reasoning.encrypted_content`, as Codex does, and marked with the account
//! that wrote it) followed by either an assistant message or a function call (`output_index` 1).

use serde_json::{json, Map, Value};

use super::{random_hex, unix_now};

/// The default answer text.
pub(super) const HELLO_TEXT: &str = "Hello from the mock upstream.";
/// The answer once the caller has sent a tool result back.
pub(super) const TOOL_RESULT_TEXT: &str = "Tool result received.";
/// The answer once the conversation was compacted after the last user message (the compacted
/// history no longer holds the tool call; a model carries on from the summary).
pub(super) const AFTER_COMPACTION_TEXT: &str = "Carrying on after compaction.";
/// The phrase in the last user message that makes the mock call a tool.
const TOOL_TRIGGER: &str = "use a tool";
/// The event type a drifted backend sends after `response.in_progress` (`MockState::set_drift`).
pub(super) const UNKNOWN_EVENT: &str = "response.upcoming_feature";
/// The header a drifted backend sends with its streams.
pub(super) const UNKNOWN_HEADER: &str = "x-codex-upcoming-feature";
/// Reasoning tokens reported in every usage, so usage accounting has something to add up.
const REASONING_TOKENS: u64 = 16;

/// What one `/responses` call answers with, fixed when the request arrives.
pub(super) struct ResponseCtx {
    pub(super) id: String,
    pub(super) model: String,
    created_at: i64,
    request: Map<String, Value>,
    input_tokens: u64,
}

impl ResponseCtx {
    /// `body` is the validated request; `body_len` its size, from which input tokens are
    /// estimated (about four bytes a token).
    pub(super) fn new(body: &Value, body_len: usize) -> Self {
        let request = body.as_object().cloned().unwrap_or_default();
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        ResponseCtx {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            model,
            created_at: unix_now(),
            request,
            input_tokens: u64::try_from(body_len / 4).unwrap_or(u64::MAX).max(1),
        }
    }

    /// The full Response object; request fields a Response echoes are copied from the request.
    pub(super) fn response(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": null,
            "instructions": self.echo("instructions", Value::Null),
            "max_output_tokens": null,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.echo("parallel_tool_calls", json!(true)),
            "previous_response_id": null,
            "prompt_cache_key": self.echo("prompt_cache_key", Value::Null),
            "reasoning": self.echo("reasoning", json!({"effort": null, "summary": null})),
            "service_tier": self.echo("service_tier", json!("auto")),
            "store": false,
            "temperature": 1.0,
            "text": self.echo("text", json!({"format": {"type": "text"}})),
            "tool_choice": self.echo("tool_choice", json!("auto")),
            "tools": self.echo("tools", json!([])),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": {},
        })
    }

    fn echo(&self, field: &str, default: Value) -> Value {
        match self.request.get(field) {
            Some(Value::Null) | None => default,
            Some(value) => value.clone(),
        }
    }

    /// The usage of an answer of `answer_tokens`: half the input found in the cache (as a turn
    /// that resends its conversation does), so each of the four counts has something to add up.
    pub(super) fn usage(&self, answer_tokens: u64) -> Value {
        let output_tokens = answer_tokens + REASONING_TOKENS;
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.input_tokens / 2},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": self.input_tokens + output_tokens,
        })
    }

    pub(super) fn created_events(&self, events: &mut Events) {
        let response = self.response("in_progress", Vec::new(), Value::Null);
        events.push("response.created", json!({ "response": response }));
        events.push("response.in_progress", json!({ "response": response }));
    }
}

/// The answer kind, chosen from the request the way a model would.
enum Answer {
    Text(&'static str),
    ToolCall { name: String },
}

/// The normal answer to `body` from `account`: a text message, or a function call when asked
/// for one.
pub(super) fn normal(ctx: &ResponseCtx, body: &Value, account: Option<&str>) -> Vec<Value> {
    let mut events = Events::default();
    ctx.created_events(&mut events);
    let encrypted = super::stateless::includes_encrypted(body)
        .then(|| super::stateless::encrypted_for(account, &random_hex(24)));
    let reasoning = reasoning_events(&mut events, encrypted, Announce::WithContent);
    let (item, answer_tokens) = match answer_for(body) {
        Answer::Text(text) => message_events(&mut events, 1, text),
        Answer::ToolCall { name } => function_call_events(&mut events, 1, &name),
    };
    let response = ctx.response("completed", vec![reasoning, item], ctx.usage(answer_tokens));
    events.push("response.completed", json!({ "response": response }));
    events.into_vec()
}

/// `events` with an event no client knows yet inserted after `response.in_progress`, renumbered.
pub(super) fn with_unknown_event(events: Vec<Value>) -> Vec<Value> {
    let mut numbered = Events::default();
    for (i, event) in events.into_iter().enumerate() {
        if i == 2 {
            numbered.push(UNKNOWN_EVENT, json!({"detail": {"new": true}}));
        }
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        let mut fields = event;
        if let Some(map) = fields.as_object_mut() {
            map.remove("type");
            map.remove("sequence_number");
        }
        numbered.push(&kind, fields);
    }
    numbered.into_vec()
}

/// `response.created`, then `response.failed` carrying `{code, message}` in `response.error`,
/// where the Codex CLI reads it.
pub(super) fn failed(ctx: &ResponseCtx, code: &str, message: &str) -> Vec<Value> {
    let mut events = Events::default();
    let response = ctx.response("in_progress", Vec::new(), Value::Null);
    events.push("response.created", json!({ "response": response }));
    let mut response = ctx.response("failed", Vec::new(), Value::Null);
    response["error"] = json!({"code": code, "message": message});
    events.push("response.failed", json!({ "response": response }));
    events.into_vec()
}

fn answer_for(body: &Value) -> Answer {
    let input = body
        .get("input")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last_type = input.last().and_then(|item| item.get("type"));
    if last_type.and_then(Value::as_str) == Some("function_call_output") {
        return Answer::Text(TOOL_RESULT_TEXT);
    }
    if compacted_since_last_user(input) {
        return Answer::Text(AFTER_COMPACTION_TEXT);
    }
    let asks_for_tool = last_user_text(input).to_lowercase().contains(TOOL_TRIGGER);
    match first_function_tool(body) {
        Some(name) if asks_for_tool => Answer::ToolCall { name },
        _ => Answer::Text(HELLO_TEXT),
    }
}

/// A `compaction` item follows the last `user` message.
fn compacted_since_last_user(input: &[Value]) -> bool {
    input
        .iter()
        .rev()
        .take_while(|item| item.get("role").and_then(Value::as_str) != Some("user"))
        .any(|item| item.get("type").and_then(Value::as_str) == Some("compaction"))
}

/// The text of the last `user` message; its content is a string or a list of text parts.
fn last_user_text(input: &[Value]) -> String {
    let Some(message) = input
        .iter()
        .rev()
        .find(|item| item.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The name of the first `function` tool (Responses shape `{type, name}`; the Chat shape
/// `{type, function: {name}}` is read too).
fn first_function_tool(body: &Value) -> Option<String> {
    body.get("tools")?
        .as_array()?
        .iter()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
        .find_map(|tool| {
            tool.get("name")
                .or_else(|| tool.get("function")?.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// What `response.output_item.added` shows of a reasoning item.
pub(super) enum Announce {
    /// The whole item (the mock's normal answers).
    WithContent,
    /// As upstream: without its encrypted content, which comes with `done`.
    WithoutContent,
}

/// A reasoning item at output index 0, announced and done; returns the finished item. Without
/// `encrypted` (not asked for), the item has no `encrypted_content`, as upstream.
pub(super) fn reasoning_events(
    events: &mut Events,
    encrypted: Option<String>,
    announce: Announce,
) -> Value {
    let mut reasoning = json!({
        "id": format!("rs_{}", random_hex(16)),
        "type": "reasoning",
        "summary": [],
    });
    let mut announced = reasoning.clone();
    if let Some(encrypted) = encrypted {
        reasoning["encrypted_content"] = encrypted.clone().into();
        announced["encrypted_content"] = match announce {
            Announce::WithContent => encrypted.into(),
            Announce::WithoutContent => Value::Null,
        };
    }
    events.push(
        "response.output_item.added",
        json!({"output_index": 0, "item": announced}),
    );
    events.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": reasoning}),
    );
    reasoning
}

/// An assistant message streamed as text deltas; returns the finished item and its tokens.
pub(super) fn message_events(events: &mut Events, output_index: u64, text: &str) -> (Value, u64) {
    let id = format!("msg_{}", random_hex(16));
    let at = json!({"item_id": id, "output_index": output_index, "content_index": 0});
    let item = |status: &str, content: Value| {
        json!({
            "id": id, "type": "message", "status": status,
            "role": "assistant", "content": content,
        })
    };
    let part = |text: &str| {
        json!({
            "type": "output_text", "annotations": [], "logprobs": [], "text": text,
        })
    };

    events.push(
        "response.output_item.added",
        json!({"output_index": output_index, "item": item("in_progress", json!([]))}),
    );
    events.push_at(
        "response.content_part.added",
        &at,
        json!({"part": part("")}),
    );
    let deltas = text_deltas(text);
    for delta in &deltas {
        events.push_at(
            "response.output_text.delta",
            &at,
            json!({"delta": delta, "logprobs": []}),
        );
    }
    events.push_at(
        "response.output_text.done",
        &at,
        json!({"text": text, "logprobs": []}),
    );
    events.push_at(
        "response.content_part.done",
        &at,
        json!({"part": part(text)}),
    );
    let done = item("completed", json!([part(text)]));
    events.push(
        "response.output_item.done",
        json!({"output_index": output_index, "item": done}),
    );
    (done, deltas.len() as u64)
}

/// A `function_call` with empty arguments `{}`; returns the finished item and its tokens.
fn function_call_events(events: &mut Events, output_index: u64, name: &str) -> (Value, u64) {
    const ARGUMENTS: &str = "{}";
    let id = format!("fc_{}", random_hex(16));
    let call_id = format!("call_{}", random_hex(12));
    let item = |status: &str, arguments: &str| {
        json!({
            "id": id, "type": "function_call", "status": status,
            "arguments": arguments, "call_id": call_id, "name": name,
        })
    };
    let at = json!({"item_id": id, "output_index": output_index});

    events.push(
        "response.output_item.added",
        json!({"output_index": output_index, "item": item("in_progress", "")}),
    );
    events.push_at(
        "response.function_call_arguments.delta",
        &at,
        json!({"delta": ARGUMENTS}),
    );
    events.push_at(
        "response.function_call_arguments.done",
        &at,
        json!({"arguments": ARGUMENTS}),
    );
    let done = item("completed", ARGUMENTS);
    events.push(
        "response.output_item.done",
        json!({"output_index": output_index, "item": done}),
    );
    (done, 4)
}

/// Splits before each space: `"Hello from"` → `["Hello", " from"]`.
fn text_deltas(text: &str) -> Vec<&str> {
    let mut deltas = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            deltas.push(&text[start..i]);
            start = i;
        }
    }
    deltas.push(&text[start..]);
    deltas
}

/// Numbers events as they are added, and puts `type` and `sequence_number` first.
#[derive(Default)]
pub(super) struct Events(Vec<Value>);

impl Events {
    pub(super) fn push(&mut self, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), kind.into());
        event.insert("sequence_number".into(), self.0.len().into());
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        self.0.push(Value::Object(event));
    }

    /// Like `push`, with the item position (`item_id`, `output_index`, ...) first.
    fn push_at(&mut self, kind: &str, at: &Value, fields: Value) {
        let mut merged = at.as_object().cloned().unwrap_or_default();
        if let Value::Object(fields) = fields {
            merged.extend(fields);
        }
        self.push(kind, Value::Object(merged));
    }

    pub(super) fn into_vec(self) -> Vec<Value> {
        self.0
    }
}
