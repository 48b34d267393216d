//! The admin plane: a second listener (`admin.listen`, loopback by default) for operators and
//! their automation. `/healthz` and `/readyz` answer without a token (probes); everything under
//! `/admin/v1` needs an admin bearer token — any scope to read, the write scope to change.
//!
//! | file          | owns                                                     |
//! |---------------|----------------------------------------------------------|
//! | `auth.rs`     | admin tokens in memory, the scope check middleware       |
//! | `audit.rs`    | the audit rows of acts and refused calls                 |
//! | `audit_api.rs`| `GET /admin/v1/audit`: searching the audit trail         |
//! | `accounts.rs` | `/admin/v1/accounts`: the account lifecycle              |
//! | `tenants.rs`  | `/admin/v1/tenants`: tenants, their limits and usage     |
//! | `keys.rs`     | `/admin/v1/keys`: API keys (the key shown once)          |
//! | `models.rs`   | `/admin/v1/models`: the registry as the relay sees it    |
//! | `refresh.rs`  | `POST /admin/v1/accounts/{id}/refresh`: refresh now      |
//! | `logins.rs`   | `/admin/v1/logins`: device-code and paste logins         |
//! | `pool.rs`     | `/admin/v1/pool`, an account's routing parameters        |
//! | `reload.rs`   | `POST /admin/v1/reload`: the settings read again         |
//! | `captures.rs` | `/admin/v1/audit/captures`: content capture              |
//! | `answer.rs`   | answers the tables give alike: lists, usage              |
//! | `body.rs`     | request bodies, read within their limits, as JSON        |
//! | `error.rs`    | admin failures in the OpenAI error shape                 |

pub mod accounts;
pub mod answer;
pub mod audit;
mod audit_api;
pub mod auth;
pub mod body;
pub mod captures;
pub mod error;
pub mod keys;
pub mod logins;
mod metrics;
pub mod models;
pub mod pool;
pub mod refresh;
pub mod reload;
pub mod tenants;

use std::sync::Arc;

use actix::Addr;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use relay_actors::{GetPoolStatus, RouterActor};
use serde_json::json;
use slog::Logger;

use self::auth::AdminTokens;
use self::error::AdminError;
use crate::credentials::AdminTokenRing;
use crate::edge::guard::require;
use crate::oauth::onboarding::Onboarding;
use crate::obs::metrics::Exposition;
use crate::obs::{bounded, limit};
use crate::store::{Operation, Store, StoreError};

/// Largest admin request body (an auth.json is a few KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What admin handlers share; cheap to clone, built once at startup.
#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

struct Inner {
    store: Store,
    router: Addr<RouterActor>,
    tokens: Arc<AdminTokenRing>,
    onboarding: Arc<Onboarding>,
    metrics: Arc<Exposition>,
    log: Logger,
}

impl AdminState {
    pub fn new(
        store: Store,
        router: Addr<RouterActor>,
        tokens: Arc<AdminTokenRing>,
        onboarding: Arc<Onboarding>,
        metrics: Arc<Exposition>,
        log: Logger,
    ) -> AdminState {
        AdminState(Arc::new(Inner {
            store,
            router,
            tokens,
            onboarding,
            metrics,
            log,
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }
    pub fn router(&self) -> &Addr<RouterActor> {
        &self.0.router
    }
    pub fn tokens(&self) -> &AdminTokenRing {
        &self.0.tokens
    }
    pub fn onboarding(&self) -> &Arc<Onboarding> {
        &self.0.onboarding
    }
    /// Every component's metric families, encoded on `GET /metrics`.
    pub fn metrics(&self) -> &Exposition {
        &self.0.metrics
    }
    pub fn log(&self) -> &Logger {
        &self.0.log
    }

    /// Runs a store call of kind `operation` off the arbiter; a failure other than "not found"
    /// is logged here with its cause and answered as an internal error.
    pub async fn run<T, F>(&self, operation: Operation, work: F) -> Result<T, AdminError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        self.store().run(operation, work).await.map_err(|error| {
            if !matches!(error, StoreError::NotFound(_)) {
                slog::error!(self.log(), "admin store call failed"; "error" => error.to_string());
            }
            AdminError::from(error)
        })
    }
}

/// The admin routes. A known path asked with another method gets 405, an unknown path 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(
            resource("/metrics")
                .wrap(from_fn(metrics::unless_open))
                .route(web::get().to(metrics::serve)),
        )
        .service(
            web::scope("/admin/v1")
                .wrap(from_fn(require::<AdminTokens, _>))
                .wrap(from_fn(audit::record_acts))
                .configure(accounts::routes)
                .configure(audit_api::routes)
                .configure(tenants::routes)
                .configure(keys::routes)
                .configure(models::routes)
                .configure(refresh::routes)
                .configure(logins::routes)
                .configure(pool::routes)
                .configure(reload::routes)
                .configure(captures::routes)
                .default_service(web::to(not_found)),
        );
}

/// A resource whose other methods get a 405 in the OpenAI error shape.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    Err(AdminError::MethodNotAllowed {
        method: bounded(req.method().as_str(), limit::METHOD).into_owned(),
        path: bounded(req.path(), limit::PATH).into_owned(),
    })
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    Err(AdminError::RouteNotFound {
        method: bounded(req.method().as_str(), limit::METHOD).into_owned(),
        path: bounded(req.path(), limit::PATH).into_owned(),
    })
}

/// Liveness: 200 while the server runs.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: 200 once the pool is loaded and at least one account can serve, 503 otherwise (an
/// orchestrator then keeps traffic away without restarting the relay).
async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let pool = state.router().send(GetPoolStatus).await.unwrap_or_default();
    let body = json!({
        "accounts": pool.accounts,
        "usable_accounts": pool.usable,
        "synced": pool.synced,
    });
    if pool.synced && pool.usable > 0 {
        HttpResponse::Ok().json(json!({ "status": "ready", "pool": body }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "pool": body }))
    }
}
