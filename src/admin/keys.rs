//! `/admin/v1/keys`: the API keys clients use — list, create (the key is in that one answer and
//! nowhere else, ever), get (with this day's and month's token usage), revoke (`DELETE`; the
//! row stays for the record), change (`PATCH`: limits, allowed models, expiry; a field left out
//! stays, `null` removes it).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use slog::info;

use super::answer::{listed, with_member, with_usage};
use super::audit;
use super::body::{json_body, Body};
use super::error::AdminError;
use super::{resource, AdminState};
use crate::domain::Limits;
use crate::domain::Scope;
use crate::edge::context::RequestLog;
use crate::governance::requests::KeyRequest;
use crate::governance::updates::KeyUpdate;
use crate::state::AppState;
use crate::store::keys::reveal;
use crate::store::rfc3339;
use crate::store::{ApiKeyRow, Operation, StoreError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/keys/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(revoke)),
    );
}

/// A key as the admin API shows it: never the key itself, only its public prefix.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub prefix: String,
    pub tenant: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: Limits,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRow> for KeyView {
    fn from(row: ApiKeyRow) -> KeyView {
        KeyView {
            id: row.id,
            object: "relay.api_key",
            name: row.name,
            prefix: row.prefix,
            tenant: row.tenant,
            models: row.models,
            limits: row.limits,
            expires_at: row.expires_at.map(rfc3339),
            created_at: rfc3339(row.created_at),
            revoked_at: row.revoked_at.map(rfc3339),
        }
    }
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let rows = state.run(Operation::Read, |s| s.list_keys()).await?;
    Ok(listed(rows.into_iter().map(KeyView::from)))
}

/// 201 with the view and, this once, the key in `key`.
async fn create(
    state: web::Data<AdminState>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let new = json_body::<KeyRequest>(&body)?.validate(Utc::now().timestamp())?;
    // An unknown tenant is a mistake in this request, not a missing resource.
    let created = state
        .store()
        .run(Operation::Write, move |s| s.create_key_with(&new))
        .await
        .map_err(|error| match error {
            StoreError::NotFound(message) => AdminError::invalid(message, Some("tenant")),
            other => AdminError::from(other),
        })?;
    info!(log, "API key created"; "key_id" => &created.row.id);
    let key = json!(reveal(&created));
    let id = created.row.id.clone();
    let view = with_member(KeyView::from(created.row), "key", key)?;
    Ok(audit::created(HttpResponse::Created().json(view), &id))
}

/// The key with the tokens it used today and this month (as quotas count them).
async fn get(
    state: web::Data<AdminState>,
    app: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let row = state.run(Operation::Read, move |s| s.get_key(&id)).await?;
    let id = row.id.clone();
    with_usage(KeyView::from(row), &app, Scope::Key, &id)
}

/// Changes a key that is not revoked; the running relay applies it within a sync interval.
async fn update(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let update = json_body::<KeyUpdate>(&body)?;
    let id = id.into_inner();
    let now_unix = Utc::now().timestamp();
    let row = state
        .run(Operation::Write, move |s| {
            s.update_key(&id, |now| update.apply(now, now_unix))
        })
        .await??;
    info!(log, "API key updated"; "key_id" => &row.id);
    Ok(HttpResponse::Ok().json(KeyView::from(row)))
}

/// Revokes the key; the running relay refuses it within a sync interval.
async fn revoke(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let row = state
        .run(Operation::Write, move |s| {
            let id = s.revoke_key(&id)?;
            s.get_key(&id)
        })
        .await?;
    info!(log, "API key revoked"; "key_id" => &row.id);
    Ok(HttpResponse::Ok().json(KeyView::from(row)))
}
