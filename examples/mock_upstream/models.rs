//! `GET /models?client_version=X`: the Codex catalog `{"models": [ModelInfo, ...]}` with every
//! field that old and new Codex CLIs require (spec §6.2, union of \[A\] and \[B\]), and the ETag
//! that `/responses` repeats in `x-models-etag` (so clients see an unchanged catalog).

use actix_web::HttpResponse;
use serde_json::{json, Value};

/// The catalog version, quoted as an HTTP entity tag.
pub(super) const ETAG: &str = "\"mock-etag-1\"";

pub(super) fn handle() -> HttpResponse {
    let models = [
        model_info("gpt-5.5", "GPT-5.5", "Frontier agentic coding model.", 0),
        model_info(
            "gpt-5.4-mini",
            "GPT-5.4-Mini",
            "Smaller, faster model for everyday tasks.",
            1,
        ),
    ];
    HttpResponse::Ok()
        .insert_header(("etag", ETAG))
        .json(json!({ "models": models }))
}

fn model_info(slug: &str, display_name: &str, description: &str, priority: i32) -> Value {
    json!({
        "slug": slug,
        "display_name": display_name,
        "description": description,
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": reasoning_levels(),
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": true,
        "priority": priority,
        "additional_speed_tiers": [],
        "service_tiers": [
            {"id": "priority", "name": "Fast", "description": "Faster responses at a higher cost"}
        ],
        "availability_nux": null,
        "upgrade": null,
        // Older CLIs (spec [A]) require these three.
        "base_instructions": "You are Codex, a coding agent. (mock upstream)",
        "supports_reasoning_summaries": true,
        "supports_parallel_tool_calls": true,
        "default_reasoning_summary": "auto",
        "support_verbosity": true,
        "default_verbosity": "low",
        "apply_patch_tool_type": "freeform",
        "web_search_tool_type": "text",
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_image_detail_original": false,
        "context_window": 272_000,
        "max_context_window": 272_000,
        "effective_context_window_percent": 95,
        "experimental_supported_tools": [],
        "input_modalities": ["text", "image"],
        "supports_search_tool": false,
    })
}

fn reasoning_levels() -> Value {
    json!([
        {"effort": "low", "description": "Fast responses with lighter reasoning"},
        {"effort": "medium", "description": "Balances speed and reasoning depth"},
        {"effort": "high", "description": "Greater reasoning depth for complex problems"},
        {"effort": "xhigh", "description": "Extra high reasoning depth for complex problems"},
    ])
}
