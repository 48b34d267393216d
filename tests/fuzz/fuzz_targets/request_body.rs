//! A client's request body through the relay's request path, as `POST /v1/responses` takes it:
//! `RequestBody::parse`, the fields the relay reads, the model set to its slug,
//! `InputFacts::of`, `compat::normalize` (strict, relaxed, relaxed with default instructions)
//! and `forward`.
//!
//! Invariants: nothing panics; what is forwarded is one JSON object that parses again into the
//! same fields; strict mode forwards the fields as they were; relaxed mode forwards `stream:
//! true`, `store: false`, none of the parameters the backend refuses, `instructions` only as a
//! non-empty string, the encrypted-reasoning `include` whenever `reasoning` is asked for, and an
//! `input` that needs no further rewrite and carries the same encrypted reasoning as before.
#![no_main]

use bytes::Bytes;
use codex_relay::compat;
use codex_relay::request_body::{kind, InputFacts, Kind, RequestBody};
use codex_relay::settings::CompatMode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MODES: [(CompatMode, &str); 3] = [
    (CompatMode::Strict, ""),
    (CompatMode::Relaxed, ""),
    (CompatMode::Relaxed, "You are Codex."),
];

fuzz_target!(|data: &[u8]| {
    let sent = Bytes::copy_from_slice(data);
    for (mode, default_instructions) in MODES {
        let Ok(mut request) = RequestBody::parse(&sent) else {
            return;
        };
        read_like_the_handler(&request);
        let slug = request
            .string("model")
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "gpt-5.5".to_owned());
        request.set("model", &slug);
        let before = request.to_vec();
        let facts = InputFacts::of(request.get("input"));
        compat::normalize(&mut request, &facts, mode, default_instructions);
        let forwarded = request.forward(&sent);
        let again = RequestBody::parse(&forwarded).expect("the forwarded body parses again");
        assert_eq!(
            again.to_vec(),
            request.to_vec(),
            "forwarded as the fields are"
        );
        match mode {
            CompatMode::Strict => assert_eq!(request.to_vec(), before, "strict changes nothing"),
            CompatMode::Relaxed => check_relaxed(&again, &facts, default_instructions),
        }
    }
});

/// The reads `http::responses` makes of a request before it is forwarded.
fn read_like_the_handler(request: &RequestBody) {
    for key in [
        "model",
        "input",
        "stream",
        "store",
        "instructions",
        "previous_response_id",
    ] {
        let _ = request.get(key).map(kind);
        let _ = request.get_present(key);
    }
    let _ = request.boolean("stream");
    let _ = request.string("prompt_cache_key");
}

fn check_relaxed(forwarded: &RequestBody, facts: &InputFacts, default_instructions: &str) {
    assert_eq!(forwarded.boolean("stream"), Some(true));
    assert_eq!(forwarded.boolean("store"), Some(false));
    for key in compat::DROPPED {
        assert!(forwarded.get(key).is_none(), "{key} is dropped");
    }
    match forwarded.get("instructions") {
        Some(raw) => assert!(kind(raw) == Kind::String && raw.get() != "\"\""),
        None => assert!(default_instructions.is_empty()),
    }
    if forwarded.get_present("reasoning").is_some() {
        let include = forwarded
            .get("include")
            .map(|raw| serde_json::from_str::<Value>(raw.get()));
        let asks = matches!(include, Some(Ok(Value::Array(list)))
            if list.iter().any(|v| v == "reasoning.encrypted_content"));
        assert!(asks, "reasoning asks for its encrypted content");
    }
    // `input` is rewritten through a JSON tree; one that does not read as a tree (a number past
    // f64's range) is left as sent, and so is not checked here.
    let input = forwarded.get("input");
    if input.is_some_and(|raw| serde_json::from_str::<Value>(raw.get()).is_err()) {
        return;
    }
    let after = InputFacts::of(input);
    assert!(!after.needs_rewrite, "nothing left to rewrite");
    assert_eq!(after.carries_encrypted, facts.carries_encrypted);
}
