//! The pool on the admin plane: `GET /admin/v1/pool` (how many accounts serve, conversations
//! bound, moves since startup) and `POST /admin/v1/accounts/{id}/routing` (an
//! account's priority, weight and cap on calls in flight — what `codex-relay account set` does).
//! Each account's health and quota are in its account view (`pool`).

use actix_web::{web, HttpResponse};
use relay_actors::GetPoolStatus;
use serde::Deserialize;
use serde_json::json;
use slog::info;

use super::accounts::{follow_store, view_of};
use super::body::Body;
use super::error::AdminError;
use super::{resource, AdminState};
use crate::bounds::{number, number_change};
use crate::edge::context::RequestLog;
use crate::store::Operation;
use crate::store::RoutingChange;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/pool").route(web::get().to(pool)))
        .service(resource("/accounts/{id}/routing").route(web::post().to(set_routing)));
}

async fn pool(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let status = state
        .router()
        .send(GetPoolStatus)
        .await
        .map_err(|_| AdminError::Internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "relay.pool",
        "accounts": status.accounts,
        "usable_accounts": status.usable,
        "synced": status.synced,
        "conversations": status.conversations,
        "affinity_moves": status.affinity_moves,
    })))
}

/// The body of `POST …/routing`: absent fields are left as they are; `max_in_flight: null`
/// returns to the `routing.max_in_flight` setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingBody {
    #[serde(default, deserialize_with = "number")]
    priority: Option<i64>,
    #[serde(default, deserialize_with = "number")]
    weight: Option<i64>,
    #[serde(default, deserialize_with = "number_change")]
    max_in_flight: Option<Option<i64>>,
}

async fn set_routing(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = super::accounts::checked_id(&id)?;
    let parsed: RoutingBody = serde_json::from_slice(&body.0).map_err(|e| {
        AdminError::invalid(
            format!("The body must be a JSON object with 'priority', 'weight' and/or 'max_in_flight' ({e})."),
            None,
        )
    })?;
    let change = RoutingChange::checked(parsed.priority, parsed.weight, parsed.max_in_flight)
        .map_err(AdminError::from)?;
    if change.is_empty() {
        return Err(AdminError::invalid(
            "Nothing to set: give 'priority', 'weight' or 'max_in_flight'.",
            None,
        ));
    }
    let id = state
        .run(Operation::Write, move |s| s.set_routing(&id, change))
        .await?;
    info!(log, "account routing set by an operator"; "account_id" => &id);
    follow_store(&state, &log).await;
    Ok(HttpResponse::Ok().json(view_of(&state, id).await?))
}
