//! What the Codex backend refuses because it stores nothing (`store` must be false): an
//! `item_reference` input item, and a reasoning item sent back without its `encrypted_content`
//! (the backend looks both up by id and finds nothing: 404 "Item with id '…' not found"), and
//! `previous_response_id` (400 "Unsupported parameter"). Encrypted reasoning is readable only by
//! the account that wrote it: the mock marks what it writes with the account and answers another
//! account's with 400 `invalid_encrypted_content`, as the backend does.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

/// The include entry that makes the backend return reasoning's `encrypted_content`.
pub(super) const ENCRYPTED_INCLUDE: &str = "reasoning.encrypted_content";

/// Why the backend refuses a request for something it would have had to store.
pub(super) enum Refusal {
    /// An item referenced by id (an `item_reference`, or reasoning without its content).
    ItemNotFound(String),
    /// The request chains to a stored response.
    PreviousResponse,
    /// Encrypted reasoning another account wrote.
    ForeignEncrypted(String),
}

impl Refusal {
    /// The backend's answer: its status and body.
    pub(super) fn answer(&self) -> HttpResponse {
        match self {
            Refusal::PreviousResponse => HttpResponse::BadRequest()
                .json(json!({"detail": "Unsupported parameter: previous_response_id"})),
            _ => {
                let (status, error) = self.error();
                HttpResponse::build(status).json(json!({ "error": error }))
            }
        }
    }

    /// The status and the OpenAI `error` object, as a WebSocket error frame carries them.
    pub(super) fn error(&self) -> (StatusCode, Value) {
        match self {
            Refusal::ItemNotFound(id) => openai_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "Item with id '{id}' not found. Items are not persisted when `store` is set to false. \
                     Try again with `store` set to true, or remove this item from your input."
                ),
                Some("input"),
                None,
            ),
            Refusal::PreviousResponse => openai_error(
                StatusCode::BAD_REQUEST,
                "Unsupported parameter: previous_response_id",
                Some("previous_response_id"),
                None,
            ),
            Refusal::ForeignEncrypted(id) => openai_error(
                StatusCode::BAD_REQUEST,
                &format!("The encrypted content for item {id} could not be verified."),
                None,
                Some("invalid_encrypted_content"),
            ),
        }
    }
}

fn openai_error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> (StatusCode, Value) {
    let error = json!({
        "message": message, "type": "invalid_request_error", "param": param, "code": code,
    });
    (status, error)
}

/// The first thing in `body` the backend cannot serve without storage, as seen by `account`.
pub(super) fn refusal(body: &Value, account: Option<&str>) -> Option<Refusal> {
    if body
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Some(Refusal::PreviousResponse);
    }
    item_refusal_in(body, account)
}

/// The first input item the backend cannot find or read; over a WebSocket this is all that is
/// refused, since a connection keeps its own responses for `previous_response_id`.
pub(super) fn item_refusal_in(body: &Value, account: Option<&str>) -> Option<Refusal> {
    let items = body.get("input").and_then(Value::as_array)?;
    items.iter().find_map(|item| item_refusal(item, account))
}

fn item_refusal(item: &Value, account: Option<&str>) -> Option<Refusal> {
    let id = || {
        item.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match item.get("type").and_then(Value::as_str) {
        Some("item_reference") => Some(Refusal::ItemNotFound(id())),
        Some("reasoning") => match item.get("encrypted_content").and_then(Value::as_str) {
            None => Some(Refusal::ItemNotFound(id())),
            Some(content) if !readable_by(content, account) => {
                Some(Refusal::ForeignEncrypted(id()))
            }
            Some(_) => None,
        },
        _ => None,
    }
}

/// Encrypted content the mock writes for `account`: `enc_<account tag>_<random>`.
pub(super) fn encrypted_for(account: Option<&str>, random: &str) -> String {
    format!("enc_{}_{random}", tag(account))
}

/// Content the mock did not write (no tag) is taken as readable: tests replay made-up items.
fn readable_by(content: &str, account: Option<&str>) -> bool {
    let Some(rest) = content.strip_prefix("enc_") else {
        return true;
    };
    match rest.split_once('_') {
        Some((written_by, _)) => written_by == tag(account),
        None => true,
    }
}

/// The account id reduced to what can sit between two underscores.
fn tag(account: Option<&str>) -> String {
    account
        .unwrap_or("none")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Whether the request asked for reasoning's `encrypted_content`.
pub(super) fn includes_encrypted(body: &Value) -> bool {
    body.get("include")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|v| v == ENCRYPTED_INCLUDE))
}
