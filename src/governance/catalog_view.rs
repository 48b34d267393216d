//! One caller's view of the model catalog, rendered once: the models it sees, and the two JSON
//! bodies the relay answers with (Codex's `{"models":[...]}` catalog and OpenAI's model list),
//! each with its strong `ETag`.
//!
//! Every `/responses` answer carries the caller's catalog tag (`x-models-etag`), so rendering it
//! per request would cost more than relaying the request. Views are built when a caller first
//! needs one and kept until the catalog changes (see [`super::models::ModelRegistry`]).

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::model_info::slug;

/// `created` reported for every model: the catalog does not know release dates, and a fixed
/// value keeps answers identical across restarts (2025-01-01T00:00:00Z).
const CREATED: i64 = 1_735_689_600;

/// A JSON body and its entity tag.
pub struct Rendered {
    pub body: Bytes,
    pub etag: String,
}

impl Rendered {
    fn of(value: &Value) -> Rendered {
        let body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let etag = etag_of(&body);
        Rendered { body, etag }
    }
}

/// The models one caller sees, with their answers rendered on first use.
pub struct CatalogView {
    pub models: Vec<Value>,
    owned_by: String,
    codex: OnceLock<Rendered>,
    list: OnceLock<Rendered>,
}

impl CatalogView {
    pub fn new(models: Vec<Value>, owned_by: &str) -> CatalogView {
        CatalogView {
            models,
            owned_by: owned_by.to_owned(),
            codex: OnceLock::new(),
            list: OnceLock::new(),
        }
    }

    /// Codex's catalog shape (`GET /v1/models?client_version=`); its tag is `x-models-etag`.
    pub fn codex(&self) -> &Rendered {
        self.codex
            .get_or_init(|| Rendered::of(&json!({ "models": self.models })))
    }

    /// OpenAI's list shape (`GET /v1/models`).
    pub fn list(&self) -> &Rendered {
        self.list.get_or_init(|| {
            let data: Vec<Value> = self
                .models
                .iter()
                .filter_map(slug)
                .map(|id| model_object(id, &self.owned_by))
                .collect();
            Rendered::of(&json!({"object": "list", "data": data}))
        })
    }

    /// Whether the caller sees a model of this name.
    pub fn contains(&self, id: &str) -> bool {
        self.models.iter().any(|m| slug(m) == Some(id))
    }
}

/// One model in OpenAI's shape.
pub fn model_object(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

/// A strong entity tag of `bytes`.
pub fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
