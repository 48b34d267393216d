//! The data plane: routes, shared state and middleware. `routes` is the one place that says which
//! path does what; the server and the tests build the app from it.

mod attribution;
pub mod auth;
mod codex_limits;
mod compact;
mod encrypted;
pub mod error;
mod failover;
mod file_references;
mod governance;
mod keepalive;
mod models;
mod recall;
mod relay_stream;
mod renewal;
mod responses;
mod stored_responses;
mod transport;
mod upstream_error;
mod upstream_turn;
pub mod websocket;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::QueryPayloadError;
use actix_web::middleware::from_fn;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use relay_actors::GetPoolStatus;
use serde_json::json;

use self::auth::ApiKeys;
use self::error::ApiError;
use crate::edge::guard::require;
use crate::obs::{bounded, limit};
use crate::state::AppState;

/// The data-plane routes. `/healthz` answers without a key (load balancers and orchestrators
/// probe it); everything under `/v1` requires one, and counts against its request rate. A known
/// path asked with another method gets 405, an unknown path 404, both in the OpenAI error shape.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(query_error))
        .service(resource("/healthz").route(web::get().to(healthz)))
        .service(usage_endpoint("/api/codex/usage"))
        .service(usage_endpoint("/backend-api/wham/usage"))
        .service(
            web::scope("/v1")
                .wrap(from_fn(refuse_unaudited))
                .wrap(from_fn(governance::limit_requests))
                .wrap(from_fn(require::<ApiKeys, _>))
                .service(
                    resource("/responses")
                        .route(web::post().to(responses::create_response))
                        .route(web::get().to(websocket::open)),
                )
                .service(
                    resource("/responses/compact")
                        .route(web::post().to(responses::compact_response)),
                )
                .service(
                    resource("/responses/{id}")
                        .route(web::get().to(stored_responses::not_stored))
                        .route(web::delete().to(stored_responses::not_stored)),
                )
                .service(
                    resource("/responses/{id}/input_items")
                        .route(web::get().to(stored_responses::not_stored)),
                )
                .service(
                    resource("/responses/{id}/cancel")
                        .route(web::post().to(stored_responses::not_stored)),
                )
                .service(resource("/models").route(web::get().to(models::list_models)))
                .service(resource("/models/{id}").route(web::get().to(models::get_model)))
                .default_service(web::to(not_found)),
        );
}

/// Middleware: with `audit.on_failure = "refuse"`, while audit rows cannot be written, a 503
/// `audit_unavailable` — after authentication, before any account is leased or charged.
async fn refuse_unaudited<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refuses = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.audit().refuses());
    if refuses {
        return Ok(req
            .error_response(ApiError::AuditUnavailable)
            .map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Where the Codex CLI reads the limits it shows (under its `chatgpt_base_url`); keyed and
/// rate-limited like `/v1`.
fn usage_endpoint(path: &str) -> impl actix_web::dev::HttpServiceFactory {
    web::scope(path)
        .wrap(from_fn(governance::limit_requests))
        .wrap(from_fn(require::<ApiKeys, _>))
        .service(resource("").route(web::get().to(codex_limits::usage)))
}

/// A query string the handler cannot read: a 400 naming what is wrong (a field's name, never a
/// value), instead of actix-web's plain text.
fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let message = format!("The query string is not valid here: {error}.");
    ApiError::invalid(crate::obs::redact_secrets(&message), None).into()
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: bounded(req.method().as_str(), limit::METHOD).into_owned(),
        path: bounded(req.path(), limit::PATH).into_owned(),
    })
}

/// Liveness plus a glance at the pool: 200 while the server runs, with how many accounts can serve.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.router().send(GetPoolStatus).await.unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "accounts": pool.accounts,
        "usable_accounts": pool.usable,
    }))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound {
        method: bounded(req.method().as_str(), limit::METHOD).into_owned(),
        path: bounded(req.path(), limit::PATH).into_owned(),
    })
}
