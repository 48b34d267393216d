//! `POST /admin/v1/accounts/{id}/refresh`: refresh an account's tokens now. It joins a refresh
//! already running (one token call per account at a time), ignores a retry pause, and answers
//! with the account's view once the new token set is stored — or with why it failed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use relay_actors::{AccountId, RefreshAccount, RefreshError, Refusal};
use slog::info;

use super::accounts::{checked_id, follow_store, view_of};
use super::error::AdminError;
use super::{resource, AdminState};
use crate::edge::context::RequestLog;
use crate::store::Operation;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/accounts/{id}/refresh").route(web::post().to(refresh_now)));
}

async fn refresh_now(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let id = checked_id(&id)?;
    let row = state
        .run(Operation::Read, move |s| s.get_account(&id))
        .await?;
    // An account imported a moment ago may not have its actor yet.
    follow_store(&state, &log).await;
    let asked = RefreshAccount(AccountId::from(row.id.as_str()));
    match state.router().send(asked).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(refresh_failed(error)),
        Err(_mailbox) => return Err(AdminError::Unavailable),
    }
    info!(log, "account tokens refreshed by an operator"; "account_id" => &row.id);
    follow_store(&state, &log).await;
    Ok(HttpResponse::Ok().json(view_of(&state, row.id).await?))
}

fn refresh_failed(error: RefreshError) -> AdminError {
    let (status, code) = match &error {
        RefreshError::NotFound => return AdminError::Unavailable,
        RefreshError::Refused(Refusal::Unusable(_)) => {
            return AdminError::Failed {
                status: StatusCode::CONFLICT,
                code: "reauth_required",
                message: "This account's login can no longer be refreshed (see its 'reason'): log \
                          it in again or import a fresh auth.json."
                    .to_owned(),
            }
        }
        RefreshError::Refused(Refusal::RefreshPending | Refusal::Full) => {
            (StatusCode::GATEWAY_TIMEOUT, "refresh_pending")
        }
        RefreshError::Refused(Refusal::RefreshFailed(_)) => {
            (StatusCode::BAD_GATEWAY, "refresh_failed")
        }
    };
    AdminError::Failed {
        status,
        code,
        message: error.to_string(),
    }
}
