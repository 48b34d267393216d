//! API-key authentication of the data plane: the [`Gate`] the edge's guard applies under `/v1`.
//! Keys are checked against the in-memory ring (`credentials`), never the disk.

use actix_web::dev::ServiceRequest;
use actix_web::web;

use super::error::ApiError;
use crate::credentials::{KeyRefusal, Principal};
use crate::edge::caller::Caller;
use crate::edge::guard::{Gate, Refused};
use crate::state::AppState;

/// The data plane's gate: a valid, unexpired API key; its [`Principal`] goes to the handlers.
pub struct ApiKeys;

impl Gate for ApiKeys {
    type Identity = Principal;
    type Error = ApiError;

    fn check(req: &ServiceRequest, token: Option<&str>) -> Result<Principal, Refused<ApiError>> {
        let token = token.ok_or(Refused::Credentials(ApiError::MissingApiKey))?;
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or(Refused::Other(ApiError::Internal))?;
        let now = chrono::Utc::now().timestamp();
        state
            .keys()
            .authenticate(token, now)
            .map_err(|refusal| Refused::Credentials(refusal.into()))
    }

    fn caller(principal: &Principal) -> Caller {
        Caller::ApiKey {
            key_id: principal.key_id.clone(),
            tenant_id: principal.policy.tenant.as_ref().map(|t| t.id.clone()),
        }
    }
}

impl From<KeyRefusal> for ApiError {
    fn from(refusal: KeyRefusal) -> ApiError {
        match refusal {
            KeyRefusal::Unknown => ApiError::InvalidApiKey,
            KeyRefusal::Expired => ApiError::ExpiredApiKey,
        }
    }
}
