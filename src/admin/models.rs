//! `/admin/v1/models`: the model registry as the relay sees it — every model of the catalog (no
//! key's filter), the aliases, what is hidden, and which plans' catalogs have been fetched.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::resource;
use crate::domain::KeyPolicy;
use crate::governance::model_info::slug;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/models").route(web::get().to(list)));
}

async fn list(app: web::Data<AppState>) -> HttpResponse {
    let registry = app.models();
    let everyone = KeyPolicy::unrestricted("admin");
    let models: Vec<Value> = registry
        .visible(&everyone)
        .iter()
        .filter_map(slug)
        .map(|id| json!(id))
        .collect();
    let settings = &app.settings().models;
    HttpResponse::Ok().json(json!({
        "object": "relay.model_registry",
        "models": models,
        "aliases": settings.aliases,
        "hidden": settings.hidden,
        "fetched_plans": registry.fetched_plans(),
        "fallback_catalog": settings.catalog,
    }))
}
