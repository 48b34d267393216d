//! `GET /metrics`: every component's families in the OpenMetrics text format, for Prometheus.
//! On the admin listener, behind an admin token of any scope unless `metrics.open` says
//! otherwise (a Prometheus that cannot send a token, on a network the operator trusts).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use super::auth::AdminTokens;
use super::error::AdminError;
use super::AdminState;
use crate::edge::guard::require;
use crate::state::AppState;

/// The content type Prometheus asks for first and parses most strictly.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Middleware: an admin token, unless the operator opened the endpoint.
pub async fn unless_open<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let open = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings().metrics.open);
    if open {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    require::<AdminTokens, B>(req, next).await
}

pub async fn serve(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let text = state
        .metrics()
        .encode()
        .await
        .map_err(|_| AdminError::Internal)?;
    Ok(HttpResponse::Ok().content_type(OPENMETRICS).body(text))
}
