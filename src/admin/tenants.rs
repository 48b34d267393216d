//! `/admin/v1/tenants`: the teams that own API keys — list, create, get (with this day's and
//! month's token usage), change (`PATCH`: limits and hidden models; a field left out stays,
//! `null` removes it), delete (refused while the tenant has active keys).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use slog::info;

use super::answer::{listed, with_usage};
use super::audit;
use super::body::{json_body, Body};
use super::error::AdminError;
use super::{resource, AdminState};
use crate::domain::Limits;
use crate::domain::Scope;
use crate::edge::context::RequestLog;
use crate::governance::requests::TenantRequest;
use crate::governance::updates::TenantUpdate;
use crate::state::AppState;
use crate::store::rfc3339;
use crate::store::Operation;
use crate::store::TenantRow;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/tenants")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/tenants/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

/// A tenant as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct TenantView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub limits: Limits,
    pub hidden_models: Vec<String>,
    pub active_keys: i64,
    pub created_at: String,
}

impl From<TenantRow> for TenantView {
    fn from(row: TenantRow) -> TenantView {
        TenantView {
            id: row.id,
            object: "relay.tenant",
            name: row.name,
            limits: row.limits,
            hidden_models: row.hidden_models,
            active_keys: row.active_keys,
            created_at: rfc3339(row.created_at),
        }
    }
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let rows = state.run(Operation::Read, |s| s.list_tenants()).await?;
    Ok(listed(rows.into_iter().map(TenantView::from)))
}

async fn create(
    state: web::Data<AdminState>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let new = json_body::<TenantRequest>(&body)?.validate()?;
    let row = state
        .run(Operation::Write, move |s| s.create_tenant(&new))
        .await?;
    info!(log, "tenant created"; "tenant_id" => &row.id);
    let id = row.id.clone();
    Ok(audit::created(
        HttpResponse::Created().json(TenantView::from(row)),
        &id,
    ))
}

/// The tenant with the tokens its keys used today and this month (as quotas count them).
async fn get(
    state: web::Data<AdminState>,
    app: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let row = state
        .run(Operation::Read, move |s| s.get_tenant(&id))
        .await?;
    let id = row.id.clone();
    with_usage(TenantView::from(row), &app, Scope::Tenant, &id)
}

/// Changes a tenant; the running relay applies it to its keys within a sync interval.
async fn update(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let update = json_body::<TenantUpdate>(&body)?;
    let id = id.into_inner();
    let row = state
        .run(Operation::Write, move |s| {
            s.update_tenant(&id, |now| update.apply(&now.limits, &now.hidden_models))
        })
        .await??;
    info!(log, "tenant updated"; "tenant_id" => &row.id);
    Ok(HttpResponse::Ok().json(TenantView::from(row)))
}

async fn delete(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let target = id.clone();
    state
        .run(Operation::Write, move |s| s.delete_tenant(&target))
        .await?;
    info!(log, "tenant deleted"; "tenant" => &id);
    Ok(HttpResponse::Ok().json(json!({ "id": id, "object": "relay.tenant", "deleted": true })))
}
