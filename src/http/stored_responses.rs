//! The Responses API's endpoints on stored responses — `GET /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items`, `POST /v1/responses/{id}/cancel` and
//! `DELETE /v1/responses/{id}`. The relay calls the Codex backend with `store: false`, the
//! backend keeps nothing, and codex-relay stores no response either: each answers the 404 OpenAI
//! gives for a response id it does not know, with a message that says why, so that an SDK caller
//! learns it at once instead of reading a bare "not found".

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use crate::obs::{bounded, limit};

/// The answer of every endpoint on a stored response.
pub async fn not_stored(id: web::Path<(String,)>) -> Result<HttpResponse, ApiError> {
    let (id,) = id.into_inner();
    Err(ApiError::ResponseNotStored {
        id: bounded(&id, limit::UPSTREAM_TEXT).into_owned(),
    })
}
