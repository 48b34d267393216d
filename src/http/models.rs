//! `GET /v1/models` and `GET /v1/models/{id}`: the configured catalog as OpenAI model objects.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::AppState;

/// `created` reported for every model: the catalog does not know release dates, and a fixed
/// value keeps answers identical across restarts (2025-01-01T00:00:00Z).
const CREATED: i64 = 1_735_689_600;

/// The models clients may ask for.
pub struct ModelCatalog {
    ids: Vec<String>,
    owned_by: String,
}

impl ModelCatalog {
    pub fn new(ids: Vec<String>, owned_by: String) -> ModelCatalog {
        ModelCatalog { ids, owned_by }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.iter().any(|m| m == id)
    }

    fn object(&self, id: &str) -> serde_json::Value {
        json!({"id": id, "object": "model", "created": CREATED, "owned_by": self.owned_by})
    }
}

pub async fn list_models(state: web::Data<AppState>) -> HttpResponse {
    let catalog = state.models();
    let data: Vec<_> = catalog.ids.iter().map(|id| catalog.object(id)).collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

pub async fn get_model(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.models();
    let id = id.into_inner();
    if !catalog.contains(&id) {
        return Err(ApiError::ModelNotFound(id));
    }
    Ok(HttpResponse::Ok().json(catalog.object(&id)))
}
