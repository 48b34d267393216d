//! `GET /v1/models` (an OpenAI list, or Codex's `{"models":[...]}` catalog when asked with
//! `?client_version=`, the form of a Codex `model_catalog_url`) and `GET /v1/models/{id}`. Both
//! answer from the caller's view of the registry (rendered once per catalog, see
//! `governance::catalog_view`), with an `ETag` of the body and `304 Not Modified` for a matching
//! `If-None-Match`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::ApiError;
use crate::credentials::Principal;
use crate::governance::catalog_view::{etag_of, model_object, Rendered};
use crate::obs::{bounded, limit};
use crate::state::AppState;

#[derive(serde::Deserialize)]
pub struct CatalogQuery {
    client_version: Option<String>,
}

/// The `ETag` of the caller's Codex-shaped catalog: what `/responses` answers carry in
/// `x-models-etag`, so a Codex client refetches the catalog only when it changed.
pub fn codex_catalog_etag(state: &AppState, principal: &Principal) -> String {
    state.models().view(&principal.policy).codex().etag.clone()
}

pub async fn list_models(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: web::ReqData<Principal>,
    query: web::Query<CatalogQuery>,
) -> HttpResponse {
    let view = state.models().view(&principal.policy);
    let rendered = match query.client_version {
        Some(_) => view.codex(),
        None => view.list(),
    };
    tagged(&req, rendered)
}

pub async fn get_model(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: web::ReqData<Principal>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !state.models().view(&principal.policy).contains(&id) {
        return Err(ApiError::ModelNotFound(
            bounded(&id, limit::MODEL).into_owned(),
        ));
    }
    let object = model_object(&id, &state.settings().models.owned_by);
    let body = Bytes::from(serde_json::to_vec(&object).unwrap_or_default());
    let etag = etag_of(&body);
    Ok(tagged(&req, &Rendered { body, etag }))
}

/// The body as JSON with its strong `ETag`, or 304 when the client has it.
fn tagged(req: &HttpRequest, rendered: &Rendered) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == rendered.etag || t == "*")
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((header::ETAG, rendered.etag.clone()));
    if matches {
        return response.finish();
    }
    response
        .content_type("application/json")
        .body(rendered.body.clone())
}
