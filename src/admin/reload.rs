//! `POST /admin/v1/reload` (write scope): the settings file and the environment read again, as
//! a SIGHUP does. The answer names the changed settings now in force and those that need a
//! restart; invalid settings change nothing and are answered 422 `invalid_settings`, naming the
//! setting and why.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::AdminError;
use super::resource;
use crate::reload::{ReloadError, Reloader};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/reload").route(web::post().to(reload)));
}

async fn reload(reloader: web::Data<Reloader>) -> Result<HttpResponse, AdminError> {
    match reloader.reload().await {
        Ok(changes) => Ok(HttpResponse::Ok().json(json!({
            "object": "relay.settings_reload",
            "applied": changes.applied,
            "needs_restart": changes.needs_restart,
        }))),
        Err(ReloadError::Invalid(e)) => Err(AdminError::Failed {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_settings",
            message: format!("The settings were not reloaded and nothing changed: {e}."),
        }),
        // Logged by the reload.
        Err(ReloadError::Internal(_)) => Err(AdminError::Internal),
    }
}
