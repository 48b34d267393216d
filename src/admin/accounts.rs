//! `/admin/v1/accounts`: the account lifecycle for operators — list, get, import an auth.json,
//! enable, disable, drain, delete. Views join what the store holds with what the account's actor
//! knows now (state, calls in flight, last error, pool state: health and quota). No token ever leaves through these views.
//!
//! Every change is written to the store (the source of truth) and the router is told to follow
//! at once, so the answer already reflects it.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use relay_actors::{AccountStatus, AdminState as Intent, GetAccountStatuses, Reconcile};
use serde::{Deserialize, Serialize};
use serde_json::json;
use slog::{info, warn, Logger};

use super::answer::listed;
use super::body::Body;
use super::error::AdminError;
use super::{resource, AdminState};
use crate::edge::context::RequestLog;
use crate::oauth::auth_json;
use crate::obs::mask_email;
use crate::store::rfc3339;
use crate::store::{AccountSummary, ImportOutcome, Operation};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/accounts")
            .route(web::get().to(list))
            .route(web::post().to(import)),
    )
    .service(
        resource("/accounts/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    )
    .service(resource("/accounts/{id}/enable").route(web::post().to(enable)))
    .service(resource("/accounts/{id}/disable").route(web::post().to(disable)))
    .service(resource("/accounts/{id}/drain").route(web::post().to(drain)));
}

/// An account as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub id: String,
    pub object: &'static str,
    pub label: String,
    pub chatgpt_account_id: String,
    /// Masked: `d***@example.com`.
    pub email: Option<String>,
    pub plan: Option<String>,
    /// What keeps the account out of rotation (`unreadable`: its sealed tokens do not open), or
    /// `active`.
    pub state: String,
    /// What the operator asked for: `active`, `disabled` or `draining`.
    pub admin_state: String,
    /// Why the account needs attention, and what to do about it.
    pub reason: Option<String>,
    pub token_expires_at: Option<String>,
    pub last_refresh: Option<String>,
    pub in_flight: usize,
    pub last_error: Option<LastErrorView>,
    /// A token refresh is running now.
    pub refreshing: bool,
    /// The account serves with rotated tokens the store could not take yet (the refresh token
    /// in the store is spent): the relay writes them again until it can and must keep running.
    pub tokens_unsaved: bool,
    /// The last failed token refresh (cleared by a successful one).
    pub last_refresh_error: Option<LastErrorView>,
    /// Routing parameters, health (cooldown, breaker) and the last quota snapshot; absent while
    /// the router has not started the account yet.
    pub pool: Option<serde_json::Value>,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct LastErrorView {
    pub message: String,
    pub at: String,
}

impl AccountView {
    /// `live` is the actor's status, absent while the router has not started it yet.
    pub fn new(row: AccountSummary, live: Option<&AccountStatus>) -> AccountView {
        let live_reason = live.and_then(|s| match &s.state.auth {
            relay_actors::AuthState::ReauthRequired { reason } => Some(reason.clone()),
            relay_actors::AuthState::Valid => None,
        });
        let now = std::time::SystemTime::now();
        AccountView {
            object: "relay.account",
            state: crate::pool::view::shown_state(&row, live, now).to_owned(),
            admin_state: row.state,
            reason: row
                .unreadable
                .or(live_reason)
                .or(row.reauth_reason)
                .or(row.state_reason),
            email: row.email.as_deref().map(mask_email),
            token_expires_at: row.token_expires_at.map(rfc3339),
            last_refresh: row.last_refresh.map(rfc3339),
            in_flight: live.map_or(0, |s| s.in_flight),
            last_error: live
                .and_then(|s| s.last_error.as_ref())
                .map(|e| LastErrorView {
                    message: e.message.clone(),
                    at: rfc3339(e.at),
                }),
            refreshing: live.is_some_and(|s| s.refreshing),
            tokens_unsaved: live.is_some_and(|s| s.tokens_unsaved),
            last_refresh_error: row.last_refresh_error.map(|message| LastErrorView {
                message,
                at: row.last_refresh_error_at.map_or_else(String::new, rfc3339),
            }),
            pool: live.map(|s| crate::pool::view::live_json(s, now)),
            created_at: rfc3339(row.created_at),
            id: row.id,
            label: row.label,
            chatgpt_account_id: row.chatgpt_account_id,
            plan: row.plan,
        }
    }
}

/// Account ids are relay uuids or ChatGPT account ids: short, plain ASCII.
pub fn checked_id(id: &str) -> Result<String, AdminError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if (1..=128).contains(&id.len()) && id.bytes().all(plain) {
        Ok(id.to_owned())
    } else {
        Err(AdminError::invalid(
            "An account id is 1 to 128 letters, digits, '-', '_' or '.'.",
            Some("id"),
        ))
    }
}

/// An account's label as an operator gives it (import, login), checked as every name is.
pub fn checked_label(label: Option<String>) -> Result<Option<String>, AdminError> {
    Ok(label
        .map(|l| crate::bounds::name("label", &l))
        .transpose()?)
}

async fn live_statuses(state: &AdminState) -> HashMap<String, AccountStatus> {
    let statuses = state
        .router()
        .send(GetAccountStatuses)
        .await
        .unwrap_or_default();
    statuses
        .into_iter()
        .map(|s| (s.id.to_string(), s))
        .collect()
}

/// One account's view, read after any change was applied.
pub async fn view_of(state: &AdminState, id: String) -> Result<AccountView, AdminError> {
    let row = state
        .run(Operation::Read, move |s| s.get_account(&id))
        .await?;
    let live = live_statuses(state).await.remove(&row.id);
    Ok(AccountView::new(row, live.as_ref()))
}

/// Makes the router follow the store now, so the answer to a change reflects it.
pub async fn follow_store(state: &AdminState, log: &Logger) {
    match state.router().send(Reconcile).await {
        Ok(Ok(())) => {}
        // The periodic sync follows later; the change itself is stored.
        Ok(Err(error)) => warn!(log, "could not apply an admin change at once";
            "error" => error.to_string()),
        Err(_) => warn!(log, "could not apply an admin change at once";
            "error" => "router unavailable"),
    }
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let rows = state.run(Operation::Read, |s| s.list_accounts()).await?;
    let live = live_statuses(&state).await;
    Ok(listed(rows.into_iter().map(|row| {
        let status = live.get(&row.id);
        AccountView::new(row, status)
    })))
}

async fn get(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = checked_id(&id)?;
    Ok(HttpResponse::Ok().json(view_of(&state, id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    label: Option<String>,
}

/// Imports the auth.json in the body: 201 for a new account, 200 when the same ChatGPT account
/// was already in the pool (its tokens are replaced).
async fn import(
    state: web::Data<AdminState>,
    query: Result<web::Query<ImportQuery>, actix_web::Error>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let query =
        query.map_err(|_| AdminError::invalid("The only query parameter is 'label'.", None))?;
    let label = checked_label(query.into_inner().label)?;
    let text = std::str::from_utf8(&body.0).map_err(|_| {
        AdminError::invalid("The body must be an auth.json file (UTF-8 JSON).", None)
    })?;
    let mut account =
        auth_json::parse(text).map_err(|e| AdminError::invalid(e.to_string(), None))?;
    account.label = label;
    let (id, outcome) = state
        .run(Operation::Write, move |s| s.import_account(&account))
        .await?;
    if outcome == ImportOutcome::Updated {
        warn!(log, "re-imported an account: its tokens were replaced; the relay now owns this login";
            "account_id" => &id);
    } else {
        info!(log, "imported an account"; "account_id" => &id);
    }
    follow_store(&state, &log).await;
    let status = match outcome {
        ImportOutcome::Created => StatusCode::CREATED,
        ImportOutcome::Updated => StatusCode::OK,
    };
    let view = view_of(&state, id.clone()).await?;
    Ok(super::audit::created(
        HttpResponse::build(status).json(view),
        &id,
    ))
}

async fn set_intent(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    intent: Intent,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = checked_id(&id)?;
    let id = state
        .run(Operation::Write, move |s| s.set_account_state(&id, intent))
        .await?;
    info!(log, "account state set by an operator";
        "account_id" => &id, "state" => intent.name());
    follow_store(&state, &log).await;
    Ok(HttpResponse::Ok().json(view_of(&state, id).await?))
}

async fn enable(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    set_intent(state, id, Intent::Active, log).await
}

async fn disable(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    set_intent(state, id, Intent::Disabled, log).await
}

/// Calls in flight finish; no new ones are granted. `in_flight` in the view says when it is done.
async fn drain(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    set_intent(state, id, Intent::Draining, log).await
}

async fn delete(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = checked_id(&id)?;
    let row = {
        let id = id.clone();
        state
            .run(Operation::Read, move |s| s.get_account(&id))
            .await?
    };
    let relay_id = row.id.clone();
    state
        .run(Operation::Write, move |s| s.remove_account(&relay_id))
        .await?;
    info!(log, "account deleted by an operator"; "account_id" => &row.id);
    follow_store(&state, &log).await;
    Ok(HttpResponse::Ok().json(json!({
        "id": row.id, "object": "relay.account.deleted", "deleted": true,
    })))
}
