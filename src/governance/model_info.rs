//! Codex `ModelInfo` entries (the Codex CLI's catalog entries) for models the relay knows only
//! by name: the configured fallback catalog, used until (or unless) the upstream's catalog has
//! been fetched. Every field that old and new Codex CLIs require is present, with conservative
//! values.

use serde_json::{json, Value};

/// A complete `ModelInfo` for `slug`, listed at `priority`.
pub fn synthesized(slug: &str, priority: usize) -> Value {
    json!({
        "slug": slug,
        "display_name": slug,
        "description": null,
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": [
            {"effort": "low", "description": "Fast responses with lighter reasoning"},
            {"effort": "medium", "description": "Balances speed and reasoning depth"},
            {"effort": "high", "description": "Greater reasoning depth for complex problems"},
        ],
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": true,
        "priority": priority,
        "base_instructions": "",
        "supports_reasoning_summaries": true,
        "supports_parallel_tool_calls": true,
        "support_verbosity": false,
        "truncation_policy": {"mode": "bytes", "limit": 10_000},
        "experimental_supported_tools": [],
        "context_window": 272_000,
        "input_modalities": ["text", "image"],
    })
}

/// The same entry offered under another name (an alias): the client sends the alias, the relay
/// resolves it.
pub fn renamed(info: &Value, name: &str) -> Value {
    let mut info = info.clone();
    if let Some(map) = info.as_object_mut() {
        map.insert("slug".to_owned(), Value::from(name));
        map.insert("display_name".to_owned(), Value::from(name));
    }
    info
}

/// The slug of a `ModelInfo`.
pub fn slug(info: &Value) -> Option<&str> {
    info.get("slug").and_then(Value::as_str)
}
