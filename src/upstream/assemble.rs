//! Non-streaming answers: the Codex backend only streams, so the relay reads the whole stream and
//! builds the one Response object an OpenAI client expects from `POST /v1/responses`.
//!
//! Output items come from `response.output_item.done` (that is where clients build history from);
//! the rest from `response.completed` (or `response.incomplete`). Fields that strict SDK
//! validation requires are filled in when the upstream left them out.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use bytes::Bytes;

use super::sse::{event_type, events, parse_data, EventSplitter};

/// How the upstream stream ended.
#[derive(Debug)]
pub enum Assembled {
    /// A complete Response object (status `completed` or `incomplete`).
    Response(Value),
    /// `response.failed`: the upstream's error object (`code`, `message`).
    Failed(Value),
    /// The stream ended without a terminal event.
    Truncated,
}

#[derive(Default)]
pub struct Assembler {
    splitter: EventSplitter,
    items: BTreeMap<u64, Value>,
    created: Option<Value>,
    terminal: Option<(String, Value)>,
    /// The `response.output_item.done` events, when asked for ([`Self::keeping_outputs`]).
    outputs: Option<Vec<Bytes>>,
}

/// A completed response's output events, kept whole (slices of the chunks read, not copies) for
/// the response memory, and its id.
pub struct CompletedOutputs {
    pub events: Vec<Bytes>,
    pub response_id: Option<String>,
}

impl Assembler {
    /// The assembler, keeping each `response.output_item.done` event too, whole: the events it
    /// splits anyway, so that the response memory needs no second pass over the answer.
    pub fn keeping_outputs(mut self) -> Assembler {
        self.outputs = Some(Vec::new());
        self
    }

    pub fn push(&mut self, chunk: Bytes) {
        let whole = self.splitter.complete(chunk);
        self.read(&whole);
    }

    fn read(&mut self, whole: &Bytes) {
        for (start, end, _) in events(whole) {
            let block = &whole[start..end];
            if let Some(outputs) = &mut self.outputs {
                if event_type(block) == Some("response.output_item.done") {
                    outputs.push(whole.slice(start..end));
                }
            }
            self.on_event(block);
        }
    }

    fn on_event(&mut self, block: &[u8]) {
        let Some(kind) = event_type(block).map(str::to_owned) else {
            return;
        };
        let Some(mut data) = parse_data(block) else {
            return;
        };
        match kind.as_str() {
            "response.created" => self.created = Some(take(&mut data, "response")),
            "response.output_item.done" => {
                let index = data["output_index"]
                    .as_u64()
                    .unwrap_or(self.items.len() as u64);
                self.items.insert(index, take(&mut data, "item"));
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.terminal = Some((kind, take(&mut data, "response")));
            }
            _ => {}
        }
    }

    /// The result once the stream has ended; `model` fills a missing `model` field.
    pub fn finish(self, model: &str) -> Assembled {
        self.finish_keeping(model).0
    }

    /// The result, and the kept output events if the response completed (`response.completed`:
    /// an incomplete or failed answer is not worth remembering).
    pub fn finish_keeping(mut self, model: &str) -> (Assembled, Option<CompletedOutputs>) {
        if let Some(last) = self.splitter.finish() {
            self.read(&last);
        }
        let completed = match (&self.terminal, self.outputs.take()) {
            (Some((kind, response)), Some(events)) if kind == "response.completed" => {
                let response_id = response["id"].as_str().map(str::to_owned);
                Some(CompletedOutputs {
                    events,
                    response_id,
                })
            }
            _ => None,
        };
        (self.assemble(model), completed)
    }

    fn assemble(self, model: &str) -> Assembled {
        match self.terminal {
            Some((kind, response)) if kind == "response.failed" => {
                let error = response.get("error").cloned().unwrap_or_else(
                    || json!({"code": null, "message": "the upstream failed the response"}),
                );
                Assembled::Failed(error)
            }
            Some((_, response)) => {
                let items: Vec<Value> = self.items.into_values().collect();
                Assembled::Response(complete_response(response, self.created, items, model))
            }
            None => Assembled::Truncated,
        }
    }
}

/// `data[key]`, taken out; `null` when absent or when `data` is not an object (an event's data
/// is the upstream's JSON, whatever it is: indexing a number to write would panic).
fn take(data: &mut Value, key: &str) -> Value {
    data.get_mut(key).map(Value::take).unwrap_or_default()
}

fn complete_response(
    response: Value,
    created: Option<Value>,
    items: Vec<Value>,
    model: &str,
) -> Value {
    let mut response = match response {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let created = match created {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let has_output = response
        .get("output")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty());
    if !has_output {
        response.insert("output".into(), Value::Array(items));
    }
    let defaults = [
        ("object", json!("response")),
        ("created_at", json!(chrono::Utc::now().timestamp())),
        ("status", json!("completed")),
        ("model", json!(model)),
        ("parallel_tool_calls", json!(true)),
        ("tool_choice", json!("auto")),
        ("tools", json!([])),
    ];
    for key in [
        "id",
        "created_at",
        "model",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    ] {
        if response.get(key).is_none_or(Value::is_null) {
            if let Some(value) = created.get(key).filter(|v| !v.is_null()) {
                response.insert(key.into(), value.clone());
            }
        }
    }
    if response.get("id").is_none_or(Value::is_null) {
        let id = format!("resp_relay_{}", uuid::Uuid::new_v4().simple());
        response.insert("id".into(), json!(id));
    }
    for (key, value) in defaults {
        if response.get(key).is_none_or(Value::is_null) {
            response.insert(key.into(), value);
        }
    }
    let usage = response.entry("usage").or_insert(Value::Null);
    super::usage::complete(usage);
    Value::Object(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> String {
        format!("event: {kind}\ndata: {data}\n\n")
    }

    #[test]
    fn items_and_usage_are_assembled_into_one_response() {
        let message = json!({"type":"message","role":"assistant","id":"msg_1",
            "content":[{"type":"output_text","text":"hi","annotations":[]}]});
        let stream = [
            event("response.created", json!({"type":"response.created","response":{"id":"resp_1","model":"gpt-5.5","created_at":5}})),
            event("response.output_item.done", json!({"type":"response.output_item.done","output_index":1,"item":message})),
            event("response.output_item.done", json!({"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1"}})),
            event("response.completed", json!({"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}})),
        ]
        .concat();
        let mut assembler = Assembler::default();
        for chunk in stream.as_bytes().chunks(10) {
            assembler.push(Bytes::copy_from_slice(chunk));
        }
        let Assembled::Response(response) = assembler.finish("gpt-5.5") else {
            panic!("no response");
        };
        assert_eq!(response["id"], "resp_1");
        assert_eq!(response["created_at"], 5);
        assert_eq!(response["object"], "response");
        assert_eq!(response["output"][0]["type"], "reasoning");
        assert_eq!(response["output"][1]["content"][0]["text"], "hi");
        assert_eq!(
            response["usage"]["input_tokens_details"]["cached_tokens"],
            0
        );
        assert_eq!(
            response["usage"]["output_tokens_details"]["reasoning_tokens"],
            0
        );
        assert_eq!(response["usage"]["total_tokens"], 5);
        for key in ["parallel_tool_calls", "tool_choice", "tools", "model"] {
            assert!(!response[key].is_null(), "{key}");
        }
    }

    #[test]
    fn a_failed_stream_yields_the_error() {
        let mut assembler = Assembler::default();
        assembler.push(Bytes::from(event("response.failed", json!({"type":"response.failed","response":{"error":{"code":"server_is_overloaded","message":"busy"}}}))));
        let Assembled::Failed(error) = assembler.finish("m") else {
            panic!("not failed");
        };
        assert_eq!(error["code"], "server_is_overloaded");
    }

    #[test]
    fn a_stream_without_terminal_event_is_truncated() {
        let mut assembler = Assembler::default();
        assembler.push(Bytes::from_static(
            b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n",
        ));
        assert!(matches!(assembler.finish("m"), Assembled::Truncated));
    }

    #[test]
    fn events_whose_data_is_not_an_object_are_read_as_empty_objects() {
        for data in ["1", "[]", "\"text\"", "true"] {
            let mut assembler = Assembler::default();
            let stream = [
                "response.created",
                "response.output_item.done",
                "response.completed",
            ]
            .map(|kind| format!("event: {kind}\ndata: {data}\n\n"))
            .concat();
            assembler.push(Bytes::from(stream));
            let Assembled::Response(response) = assembler.finish("m") else {
                panic!("no response for data {data}");
            };
            assert_eq!(response["model"], "m");
        }
    }

    #[test]
    fn a_terminal_event_without_its_blank_line_still_counts() {
        let mut assembler = Assembler::default();
        let last = event(
            "response.completed",
            json!({"type":"response.completed","response":{"id":"r"}}),
        );
        assembler.push(Bytes::from(last.trim_end().to_owned()));
        assert!(matches!(assembler.finish("m"), Assembled::Response(_)));
    }

    #[test]
    fn kept_outputs_are_slices_of_the_chunks_and_handed_over_only_once_completed() {
        let done = event(
            "response.output_item.done",
            json!({"output_index": 0, "item": {"id": "msg_1"}}),
        );
        let completed = event("response.completed", json!({"response": {"id": "resp_1"}}));
        let chunk = Bytes::from(format!("{done}{completed}"));
        let mut assembler = Assembler::default().keeping_outputs();
        assembler.push(chunk.clone());
        let (_, kept) = assembler.finish_keeping("m");
        let kept = kept.unwrap();
        assert_eq!(kept.response_id.as_deref(), Some("resp_1"));
        assert_eq!(kept.events.len(), 1);
        assert_eq!(
            kept.events[0].as_ptr(),
            chunk.as_ptr(),
            "a slice, not a copy"
        );

        let incomplete = event("response.incomplete", json!({"response": {"id": "resp_2"}}));
        let mut cut = Assembler::default().keeping_outputs();
        cut.push(Bytes::from(format!("{done}{incomplete}")));
        assert!(
            cut.finish_keeping("m").1.is_none(),
            "kept only once completed"
        );
        let mut plain = Assembler::default();
        plain.push(chunk);
        assert!(
            plain.finish_keeping("m").1.is_none(),
            "kept only when asked"
        );
    }
}
