//! API-key authentication of the data plane. Keys live in the store as hashes; the server keeps
//! an in-memory [`KeyRing`] of the active ones (re-read every sync interval, so a key created or
//! revoked by the CLI takes effect within seconds) and authenticates without touching the disk.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::error::ApiError;
use super::AppState;
use crate::store::keys::hash_key;
use crate::store::KeyHash;

/// Who is calling: the API key that authenticated the request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Arc<str>,
}

/// The active API keys, by hash.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<KeyHash, Arc<str>>>,
}

impl KeyRing {
    /// Replaces the whole set (called after each read of the store).
    pub fn replace(&self, keys: Vec<(KeyHash, String)>) {
        let keys = keys
            .into_iter()
            .map(|(hash, id)| (hash, Arc::from(id)))
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let hash = hash_key(presented);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(&hash).map(|id| Principal {
            key_id: Arc::clone(id),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: every request under it must carry a valid API key; the [`Principal`] is put in the
/// request's extensions for handlers and the access log.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let principal = match (req.app_data::<web::Data<AppState>>(), bearer(req.headers())) {
        (_, None) => Err(ApiError::MissingApiKey),
        (Some(state), Some(token)) => state
            .keys()
            .authenticate(token)
            .ok_or(ApiError::InvalidApiKey),
        (None, Some(_)) => Err(ApiError::Internal),
    };
    match principal {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_keys_authenticate() {
        let ring = KeyRing::default();
        ring.replace(vec![(hash_key("sk-relay-good"), "key-1".into())]);
        assert_eq!(
            &*ring.authenticate("sk-relay-good").unwrap().key_id,
            "key-1"
        );
        assert!(ring.authenticate("sk-relay-bad").is_none());
        ring.replace(Vec::new());
        assert!(ring.authenticate("sk-relay-good").is_none());
    }
}
