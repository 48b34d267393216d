//! `GET /v1/models` (an OpenAI list, or Codex's `{"models":[...]}` catalog when asked with
//! `?client_version=`, the form of a Codex `model_catalog_url`) and `GET /v1/models/{id}`. Both
//! answer from the registry in memory, filtered for the caller, with an `ETag` of the body and
//! `304 Not Modified` for a matching `If-None-Match`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::governance::model_info::slug;

/// `created` reported for every model: the catalog does not know release dates, and a fixed
/// value keeps answers identical across restarts (2025-01-01T00:00:00Z).
const CREATED: i64 = 1_735_689_600;

#[derive(serde::Deserialize)]
pub struct CatalogQuery {
    client_version: Option<String>,
}

fn object(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

/// The caller's catalog in Codex's shape.
fn codex_catalog(state: &AppState, principal: &Principal) -> Value {
    json!({ "models": state.models().visible(&principal.policy) })
}

/// The `ETag` of the caller's Codex-shaped catalog: what `/responses` answers carry in
/// `x-models-etag`, so a Codex client refetches the catalog only when it changed.
pub fn codex_catalog_etag(state: &AppState, principal: &Principal) -> String {
    etag_of(&serde_json::to_vec(&codex_catalog(state, principal)).unwrap_or_default())
}

pub async fn list_models(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: web::ReqData<Principal>,
    query: web::Query<CatalogQuery>,
) -> HttpResponse {
    let body = if query.client_version.is_some() {
        codex_catalog(&state, &principal)
    } else {
        let visible = state.models().visible(&principal.policy);
        let owned_by = &state.settings().models.owned_by;
        let data: Vec<Value> = visible
            .iter()
            .filter_map(slug)
            .map(|id| object(id, owned_by))
            .collect();
        json!({"object": "list", "data": data})
    };
    tagged(&req, &body)
}

pub async fn get_model(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: web::ReqData<Principal>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let visible = state.models().visible(&principal.policy);
    if !visible.iter().any(|m| slug(m) == Some(id.as_str())) {
        return Err(ApiError::ModelNotFound(id));
    }
    Ok(tagged(
        &req,
        &object(&id, &state.settings().models.owned_by),
    ))
}

/// The body as JSON with a strong `ETag` (a hash of the bytes), or 304 when the client has it.
fn tagged(req: &HttpRequest, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let etag = etag_of(&bytes);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((header::ETAG, etag.clone()));
    if matches {
        return response.finish();
    }
    response.content_type("application/json").body(bytes)
}

/// A strong entity tag of `bytes`.
fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}\"", hex(&digest[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
