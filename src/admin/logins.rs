//! `/admin/v1/logins`: logging accounts in over the admin API, with no browser on the relay's
//! host. Every endpoint needs the write scope (also reading a session: it shows the user code).
//!
//! ```text
//! POST /admin/v1/logins/device          {"label"?}         → 201 session: verification_url, user_code
//! POST /admin/v1/logins/paste           {"label"?}         → 201 session: authorize_url
//! GET  /admin/v1/logins/{id}                               → the session: pending | completed | failed
//! POST /admin/v1/logins/{id}/complete   {"callback_url"}   → the completed session, or an error
//! ```
//! A completed session names the stored account (`account_id`); the account itself is at
//! `/admin/v1/accounts/{id}`. Neither tokens nor the PKCE verifier are ever part of an answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::accounts::checked_id;
use super::body::Body;
use super::error::AdminError;
use super::{resource, AdminState};
use crate::credentials::AdminPrincipal;
use crate::oauth::login::LoginError;
use crate::oauth::onboarding::OnboardingError;
use crate::oauth::sessions::SessionError;
use crate::store::admin_tokens::AdminScope;

/// Longest callback URL accepted (real ones are well under 1 KB).
const MAX_CALLBACK_URL: usize = 8 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/logins/device").route(web::post().to(start_device)))
        .service(resource("/logins/paste").route(web::post().to(start_paste)))
        .service(resource("/logins/{id}").route(web::get().to(status)))
        .service(resource("/logins/{id}/complete").route(web::post().to(complete)));
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    callback_url: String,
}

/// A JSON body of type `T`; an empty body is `T::default()` when `empty` is given.
fn json_body<T: DeserializeOwned>(body: &Body, empty: Option<T>) -> Result<T, AdminError> {
    if body.0.iter().all(u8::is_ascii_whitespace) {
        if let Some(value) = empty {
            return Ok(value);
        }
    }
    serde_json::from_slice(&body.0).map_err(|e| {
        let message = format!("The request body must be a JSON object as documented ({e}).");
        AdminError::invalid(crate::obs::redact_secrets(&message), None)
    })
}

async fn start_device(
    state: web::Data<AdminState>,
    body: Body,
) -> Result<HttpResponse, AdminError> {
    let body: StartBody = json_body(&body, Some(StartBody::default()))?;
    let label = super::accounts::checked_label(body.label)?;
    let session = state
        .onboarding()
        .start_device(label)
        .await
        .map_err(failure)?;
    Ok(HttpResponse::Created().json(session))
}

async fn start_paste(state: web::Data<AdminState>, body: Body) -> Result<HttpResponse, AdminError> {
    let body: StartBody = json_body(&body, Some(StartBody::default()))?;
    let label = super::accounts::checked_label(body.label)?;
    let session = state.onboarding().start_paste(label).map_err(failure)?;
    Ok(HttpResponse::Created().json(session))
}

/// Reading a session needs the write scope too: its user code could log any account in.
async fn status(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let writer = req
        .extensions()
        .get::<AdminPrincipal>()
        .is_some_and(|p| p.scope == AdminScope::Write);
    if !writer {
        return Err(AdminError::InsufficientScope);
    }
    let id = checked_id(&id)?;
    let session = state.onboarding().status(&id).map_err(failure)?;
    Ok(HttpResponse::Ok().json(session))
}

async fn complete(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, AdminError> {
    let id = checked_id(&id)?;
    let body: CompleteBody = json_body(&body, None)?;
    if body.callback_url.len() > MAX_CALLBACK_URL {
        return Err(AdminError::invalid(
            format!("'callback_url' is longer than {MAX_CALLBACK_URL} bytes."),
            Some("callback_url"),
        ));
    }
    let session = state
        .onboarding()
        .complete_paste(&id, &body.callback_url)
        .await
        .map_err(failure)?;
    Ok(HttpResponse::Ok().json(session))
}

/// A login failure with the status and code that say whose it is.
fn failure(error: OnboardingError) -> AdminError {
    use StatusCode as S;
    let (status, code) = match error {
        OnboardingError::Store(store) => return store.into(),
        OnboardingError::Session(SessionError::NotFound) => {
            return AdminError::NotFound(error.to_string())
        }
        OnboardingError::Session(SessionError::TooMany) => {
            (S::TOO_MANY_REQUESTS, "too_many_logins")
        }
        OnboardingError::Session(SessionError::WrongFlow) => (S::BAD_REQUEST, "wrong_login_flow"),
        OnboardingError::Session(SessionError::Finished) => (S::CONFLICT, "login_finished"),
        OnboardingError::Login(ref login) => (login_status(login), login.code()),
    };
    AdminError::Failed {
        status,
        code,
        message: error.to_string(),
    }
}

fn login_status(error: &LoginError) -> StatusCode {
    match error {
        LoginError::NotACallback
        | LoginError::StateMismatch
        | LoginError::DeviceCodeDisabled
        | LoginError::Expired(_)
        | LoginError::Cancelled(_) => StatusCode::BAD_REQUEST,
        LoginError::NoCodexEntitlement | LoginError::Denied(_) => StatusCode::FORBIDDEN,
        LoginError::Failed(_)
        | LoginError::Device(_)
        | LoginError::Exchange(_)
        | LoginError::BadTokens(_) => StatusCode::BAD_GATEWAY,
    }
}
