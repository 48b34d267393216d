//! The data plane's side of governance: the request-rate middleware that also writes OpenAI's
//! `x-ratelimit-*` headers (and the caller's `x-models-etag`) on every `/v1` answer, and the
//! admission of a Responses call.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use chrono::Utc;

use super::error::ApiError;
use crate::credentials::Principal;
use crate::domain::Scope;
use crate::edge::phases::{Phase, Phases};
use crate::governance::headers::{ceil_secs, pairs};
use crate::governance::{Admission, LimitSnapshot, Rejection};
use crate::state::AppState;

/// Tells Codex clients which catalog an answer was made with.
const MODELS_ETAG: &str = "x-models-etag";

fn whose(scope: Scope) -> &'static str {
    match scope {
        Scope::Key => "API key",
        Scope::Tenant => "tenant",
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        match rejection {
            Rejection::Rate { scope, retry_after } => {
                let secs = ceil_secs(retry_after);
                ApiError::RateLimited {
                    message: format!(
                        "Rate limit reached for requests of this {}. Try again in {secs}s.",
                        whose(scope)
                    ),
                    retry_after_secs: secs,
                }
            }
            Rejection::Concurrency { scope, limit } => ApiError::RateLimited {
                message: format!(
                    "Too many concurrent requests for this {} (limit {limit}). Try again when one has finished.",
                    whose(scope)
                ),
                retry_after_secs: 1,
            },
            Rejection::Quota { scope, retry_after } => {
                let secs = ceil_secs(retry_after);
                ApiError::QuotaExceeded {
                    message: format!(
                        "The token quota of this {} is used up. It renews in {secs}s.",
                        whose(scope)
                    ),
                    retry_after_secs: secs,
                }
            }
            Rejection::Overloaded => ApiError::Overloaded,
        }
    }
}

/// Middleware (inside authentication): counts the request against its key's and tenant's
/// rates, refuses it with 429 when over, and writes the rate-limit headers on the answer.
pub async fn limit_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let principal = req.extensions().get::<Principal>().cloned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(principal), Some(state)) = (principal, state) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let governor = state.governor();
    let began = Instant::now();
    let tokens = governor.token_status(&principal.policy, Utc::now());
    let checked = governor.check_rate(&principal.policy);
    Phases::add(&req, Phase::Admission, began.elapsed());
    let (mut response, requests) = match checked {
        Ok(requests) => (next.call(req).await?.map_into_boxed_body(), requests),
        Err((rejection, status)) => {
            let answer = HttpResponse::from_error(ApiError::from(rejection));
            (
                req.into_response(answer.map_into_boxed_body()),
                Some(status),
            )
        }
    };
    let snapshot = LimitSnapshot { requests, tokens };
    let mut headers: Vec<(&'static str, String)> = pairs(&snapshot);
    // The upstream's catalog tag means nothing to a client of the relay's catalog; the relay's
    // tag of this caller's catalog does.
    if response.headers().contains_key(MODELS_ETAG) {
        headers.push((
            MODELS_ETAG,
            super::models::codex_catalog_etag(&state, &principal),
        ));
    }
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// Admits one Responses call for the request's principal.
pub fn admit(state: &AppState, principal: &Principal) -> Result<Admission, ApiError> {
    let policy = Arc::clone(&principal.policy);
    Ok(state.governor().admit(&policy, Utc::now())?)
}
