//! API-key authentication of the data plane. Keys live in the store as hashes; the server keeps
//! an in-memory [`KeyRing`] of the active ones (re-read every sync interval, so a key created or
//! revoked by the CLI takes effect within seconds) and authenticates without touching the disk.
//! A failure counts against its client address ([`refuse_credentials`], shared with the admin
//! plane): past the address's budget it is answered 429 and leaves no access line.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use slog::warn;

use super::context::{RequestContext, Unlogged};
use super::error::ApiError;
use super::AppState;
use crate::domain::KeyPolicy;
use crate::domain::Scope;
use crate::domain::Subject;
use crate::governance::auth_failures::{Address, Verdict};
use crate::store::keys::hash_key;
use crate::store::{KeyHash, KeyRecord};

/// Who is calling: the API key that authenticated the request, with its policy.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Arc<str>,
    pub policy: Arc<KeyPolicy>,
}

/// The active API keys, by hash.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<KeyHash, Arc<KeyPolicy>>>,
}

impl KeyRing {
    /// Replaces the whole set (called after each read of the store).
    pub fn replace(&self, keys: Vec<KeyRecord>) {
        let keys = keys
            .into_iter()
            .map(|(hash, policy)| (hash, Arc::new(policy)))
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// The principal of a presented key; an unknown key is invalid, an expired one says so.
    pub fn authenticate(&self, presented: &str, now_unix: i64) -> Result<Principal, ApiError> {
        let hash = hash_key(presented);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let policy = keys.get(&hash).ok_or(ApiError::InvalidApiKey)?;
        if policy.is_expired(now_unix) {
            return Err(ApiError::ExpiredApiKey);
        }
        Ok(Principal {
            key_id: Arc::clone(&policy.id),
            policy: Arc::clone(policy),
        })
    }

    /// Every key and tenant the ring's keys count against.
    pub fn subjects(&self) -> HashSet<Subject> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut subjects = HashSet::new();
        for policy in keys.values() {
            subjects.insert((Scope::Key, Arc::clone(&policy.id)));
            if let Some(tenant) = &policy.tenant {
                subjects.insert((Scope::Tenant, Arc::from(tenant.id.as_str())));
            }
        }
        subjects
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
            .authenticate(token, chrono::Utc::now().timestamp()),
        (None, Some(_)) => Err(ApiError::Internal),
    };
    match principal {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(error) => Ok(refuse_credentials(req, error).map_into_right_body()),
    }
}

/// The answer to a request whose credentials failed (`error`, a 401): counted against its
/// client address; past the address's budget, a 429 with `Retry-After` instead, without an
/// access line, and one warning when the address starts being throttled.
pub fn refuse_credentials(
    req: ServiceRequest,
    error: impl ResponseError + 'static,
) -> ServiceResponse {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return req.error_response(error);
    };
    let address = Address::of(req.peer_addr().map(|peer| peer.ip()));
    let (retry_after, started) = match state
        .governor()
        .auth_failures()
        .failed(address, Instant::now())
    {
        Verdict::Counted => return req.error_response(error),
        Verdict::Refused {
            retry_after,
            started,
        } => (retry_after, started),
    };
    if started {
        let log = req
            .extensions()
            .get::<RequestContext>()
            .map_or_else(|| state.log().clone(), |ctx| ctx.log.clone());
        warn!(log, "client address throttled: too many failed authentications; its further failures get 429 and are not logged one by one";
            "address" => address.to_string(),
            "per_minute" => state.settings().limits.auth_failures_per_minute);
    }
    req.extensions_mut().insert(Unlogged);
    req.error_response(throttled(retry_after))
}

fn throttled(retry_after: Duration) -> ApiError {
    // Rounded up: a client that waits this long finds a failure's worth of budget again.
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    ApiError::RateLimited {
        message: format!(
            "Too many requests without valid credentials from your address: check your API key. \
             For {secs} s, requests without a valid key are refused."
        ),
        retry_after_secs: secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_keys_authenticate() {
        let ring = KeyRing::default();
        let policy = KeyPolicy::unrestricted("key-1");
        ring.replace(vec![(hash_key("sk-relay-good"), policy)]);
        assert_eq!(
            &*ring.authenticate("sk-relay-good", 0).unwrap().key_id,
            "key-1"
        );
        assert!(ring.authenticate("sk-relay-bad", 0).is_err());
        ring.replace(Vec::new());
        assert!(ring.authenticate("sk-relay-good", 0).is_err());
    }

    #[test]
    fn an_expired_key_is_refused_with_its_own_message() {
        let ring = KeyRing::default();
        let mut policy = KeyPolicy::unrestricted("key-1");
        policy.expires_at = Some(100);
        ring.replace(vec![(hash_key("sk-relay-old"), policy)]);
        assert!(ring.authenticate("sk-relay-old", 99).is_ok());
        let error = ring.authenticate("sk-relay-old", 100).unwrap_err();
        assert!(matches!(error, ApiError::ExpiredApiKey));
    }

    /// After a re-read, the governor forgets the rates of the subjects not named here.
    #[test]
    fn a_ring_names_its_keys_and_their_tenants() {
        use crate::domain::TenantPolicy;
        let ring = KeyRing::default();
        let mut policy = KeyPolicy::unrestricted("key-1");
        policy.tenant = Some(Arc::new(TenantPolicy {
            id: "tenant-1".into(),
            name: "team".into(),
            limits: Default::default(),
            hidden_models: Vec::new(),
        }));
        ring.replace(vec![(hash_key("sk-relay-a"), policy)]);
        let subjects = ring.subjects();
        assert_eq!(subjects.len(), 2);
        assert!(subjects.contains(&(Scope::Key, Arc::from("key-1"))));
        assert!(subjects.contains(&(Scope::Tenant, Arc::from("tenant-1"))));
        ring.replace(Vec::new());
        assert!(ring.subjects().is_empty());
    }
}
