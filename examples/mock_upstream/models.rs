//! `GET /models?client_version=X`: the Codex catalog `{"models": [ModelInfo, ...]}` with every
//! field that old and new Codex CLIs require (the union of both: Codex CLI 0.125 also requires
//! `base_instructions` and two `supports_*` flags that later versions made optional), and the
//! ETag that `/responses` repeats in `x-models-etag` (so clients see an unchanged catalog).
//!
//! The catalog depends on the plan, as upstream: a test can give an account (by ChatGPT account
//! id) its own list of slugs with [`MockState::set_models_for`]; `/responses` then refuses the
//! other models for that account the way the backend does (400, "not supported").

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{MockState, RecordedRequest};

/// Fields every catalog entry must carry for old and new Codex CLIs to parse it (fields without
/// a serde default in the Codex CLI's `ModelInfo`).
/// The mock's catalog and the relay's Codex-shaped catalog are both checked against it.
pub const REQUIRED_CATALOG_FIELDS: [&str; 13] = [
    "slug",
    "display_name",
    "supported_reasoning_levels",
    "shell_type",
    "visibility",
    "supported_in_api",
    "priority",
    "support_verbosity",
    "truncation_policy",
    "experimental_supported_tools",
    "base_instructions",
    "supports_reasoning_summaries",
    "supports_parallel_tool_calls",
];

/// The catalog version, quoted as an HTTP entity tag.
pub(super) const ETAG: &str = "\"mock-etag-1\"";

/// The slugs served to an account with no catalog of its own.
const DEFAULT_SLUGS: [&str; 2] = ["gpt-5.5", "gpt-5.4-mini"];

pub(super) fn handle(state: &MockState, req: &RecordedRequest) -> HttpResponse {
    let slugs = req
        .header("chatgpt-account-id")
        .and_then(|account| state.models_for(account));
    let slugs = slugs.unwrap_or_else(|| DEFAULT_SLUGS.iter().map(|s| (*s).to_owned()).collect());
    let models: Vec<Value> = slugs
        .iter()
        .enumerate()
        .map(|(i, slug)| model_info(slug, &display_name(slug), &description(slug), i as i32))
        .collect();
    HttpResponse::Ok()
        .insert_header(("etag", ETAG))
        .json(json!({ "models": models }))
}

/// The backend's refusal of a model the account's plan does not serve, if it does not.
pub(super) fn refusal(state: &MockState, account: &str, model: &str) -> Option<String> {
    let slugs = state.models_for(account)?;
    (!slugs.iter().any(|s| s == model)).then(|| {
        format!("The '{model}' model is not supported when using Codex with a ChatGPT account.")
    })
}

fn display_name(slug: &str) -> String {
    slug.replace("gpt", "GPT").replace("-mini", "-Mini")
}

fn description(slug: &str) -> String {
    match slug {
        "gpt-5.5" => "Frontier agentic coding model.".to_owned(),
        "gpt-5.4-mini" => "Smaller, faster model for everyday tasks.".to_owned(),
        other => format!("{other} (mock upstream)"),
    }
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
        // Older CLIs (0.125) require these three.
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
