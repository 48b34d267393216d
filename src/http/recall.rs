//! The data plane's side of the response memory (`recall`): a request's references expanded
//! before it is normalized and sent, with the caller's 400 for a reference the relay does not
//! hold — before any account is asked — and the recording each answer gets while the memory is
//! on. A request without references pays one look at a top-level field and a flag the input scan
//! already set.

use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_actors::{AccountId, Lease};

use super::error::ApiError;
use crate::credentials::Principal;
use crate::obs::{bounded, limit};
use crate::recall::{self, Limits, Recording, Unknown};
use crate::request_body::{InputFacts, RequestBody};
use crate::settings::MemorySettings;
use crate::state::AppState;

const PREVIOUS: &str = "previous_response_id";

/// Replaces `previous_response_id` and the references among the input's items with what the
/// memory holds for the caller; `input` is scanned again when the input changed. Returns the
/// account that wrote the newest remembered item (it can read its encrypted reasoning).
pub fn expand_references(
    state: &AppState,
    principal: &Principal,
    request: &mut RequestBody,
    input: &mut InputFacts,
) -> Result<Option<AccountId>, ApiError> {
    let previous = request.string(PREVIOUS);
    if previous.is_none() && !input.refers_back {
        return Ok(None);
    }
    let settings = state.settings();
    let memory = &settings.responses.memory;
    if !memory.enabled {
        let unknown = first_reference(previous, request);
        return Err(not_held(&unknown, memory));
    }
    let expanded = recall::expand(
        state.memory(),
        &principal.key_id,
        previous.as_deref(),
        request.get("input"),
        Instant::now(),
        limits(memory).ttl,
    )
    .map_err(|unknown| not_held(&unknown, memory))?;
    request.set_raw("input", expanded.input);
    request.remove(PREVIOUS);
    *input = InputFacts::of(request.get("input"));
    Ok(expanded.written_by)
}

/// The account that wrote the encrypted items the request replays with their content, when the
/// memory holds them and nothing else ties the request to an account (`expanded` is what the
/// expansion found, `keyed` whether a conversation key binds it). Only a request that carries
/// encrypted content and no conversation key searches the memory.
pub fn writer_of_replayed(
    state: &AppState,
    principal: &Principal,
    request: &RequestBody,
    input: &InputFacts,
    expanded: Option<AccountId>,
    keyed: bool,
) -> Option<AccountId> {
    if expanded.is_some() || keyed || !input.carries_encrypted {
        return expanded;
    }
    let settings = state.settings();
    let memory = &settings.responses.memory;
    if !memory.enabled {
        return None;
    }
    recall::writer_of_replayed(
        state.memory(),
        &principal.key_id,
        request.get("input")?,
        Instant::now(),
        limits(memory).ttl,
    )
}

/// The recording of the answer `lease`'s account gives to `payload`, while the memory is on.
pub fn recording(
    state: &AppState,
    principal: &Principal,
    payload: &Bytes,
    lease: &Lease,
) -> Option<Recording> {
    let settings = state.settings();
    let memory = &settings.responses.memory;
    memory.enabled.then(|| {
        Recording::new(
            state.memory().clone(),
            principal.key_id.clone(),
            payload.clone(),
            lease.account_id.clone(),
            limits(memory),
        )
    })
}

fn limits(memory: &MemorySettings) -> Limits {
    Limits {
        ttl: Duration::from_secs(memory.ttl_mins.saturating_mul(60)),
        max_bytes: memory.max_bytes,
    }
}

/// With the memory off, what the caller is told about: the previous response, else an item.
fn first_reference(previous: Option<String>, request: &RequestBody) -> Unknown {
    match previous {
        Some(id) => Unknown::Response(id),
        None => {
            let input = request.get("input").map(|raw| raw.get()).unwrap_or("");
            Unknown::Item(first_referred_id(input).unwrap_or_default())
        }
    }
}

/// The id of the first item of `input` that refers back (for the message only).
fn first_referred_id(input: &str) -> Option<String> {
    let items: Vec<serde_json::Value> = serde_json::from_str(input).ok()?;
    items.iter().find_map(|item| {
        let refers = matches!(item["type"].as_str(), Some("item_reference"))
            || (item["type"] == "reasoning" && item["encrypted_content"].is_null());
        refers
            .then(|| item["id"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// The 400 for a reference the relay does not hold, naming it (bounded, as all client text).
fn not_held(unknown: &Unknown, memory: &MemorySettings) -> ApiError {
    let why = if memory.enabled {
        format!(
            "The Codex backend stores nothing, and this relay remembers the responses it served to \
             each API key for {} minutes within a memory budget: this one has expired, was \
             forgotten, was never served to this key, or the relay has restarted.",
            memory.ttl_mins
        )
    } else {
        "The Codex backend stores nothing, and this relay does not remember responses \
         (responses.memory.enabled is false)."
            .to_owned()
    };
    match unknown {
        Unknown::Response(id) => ApiError::InvalidRequest {
            message: format!(
                "Previous response with id '{}' not found. {why} Send the whole conversation in 'input' instead.",
                bounded(id, limit::MODEL)
            ),
            param: Some(PREVIOUS),
            code: Some("previous_response_not_found"),
        },
        Unknown::Item(id) => ApiError::InvalidRequest {
            message: format!(
                "Item with id '{}' not found. {why} Send the item itself (with its encrypted_content, for reasoning) instead of a reference.",
                bounded(id, limit::MODEL)
            ),
            param: Some("input"),
            code: Some("item_not_found"),
        },
    }
}
