//! Admin-token authentication. Tokens live in the store as hashes; the server keeps the active
//! ones in memory (re-read every sync interval, so `codex-relay admin-token create|revoke` takes
//! effect within seconds). Reading needs any token; every other method needs the write scope.
//! A missing or unknown token counts against the client's address like a bad API key does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::error::AdminError;
use super::AdminState;
use crate::http::auth::refuse_credentials;
use crate::store::admin_tokens::{ActiveAdminToken, AdminScope};
use crate::store::keys::hash_key;
use crate::store::{KeyHash, Store, StoreError};

/// Who is calling the admin plane: the token that authenticated the request.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub token_id: Arc<str>,
    pub scope: AdminScope,
}

/// The active admin tokens, by hash.
#[derive(Default)]
pub struct AdminTokenRing {
    tokens: RwLock<HashMap<KeyHash, AdminPrincipal>>,
}

impl AdminTokenRing {
    /// Replaces the whole set (called after each read of the store).
    pub fn replace(&self, tokens: Vec<ActiveAdminToken>) {
        let tokens = tokens
            .into_iter()
            .map(|t| {
                let principal = AdminPrincipal {
                    token_id: Arc::from(t.id),
                    scope: t.scope,
                };
                (t.hash, principal)
            })
            .collect();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens;
    }

    pub fn authenticate(&self, presented: &str) -> Option<AdminPrincipal> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens.get(&hash_key(presented)).cloned()
    }

    pub fn len(&self) -> usize {
        self.tokens.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the active admin tokens into `ring` once.
pub async fn load_tokens(store: &Store, ring: &AdminTokenRing) -> Result<(), StoreError> {
    let active = store.run(|s| s.active_admin_tokens()).await?;
    ring.replace(active);
    Ok(())
}

/// The scope a request needs: looking is reading, anything else is writing.
fn needed_scope(method: &Method) -> AdminScope {
    if method == Method::GET || method == Method::HEAD {
        AdminScope::Read
    } else {
        AdminScope::Write
    }
}

fn authorize(req: &ServiceRequest) -> Result<AdminPrincipal, AdminError> {
    let state = req
        .app_data::<web::Data<AdminState>>()
        .ok_or(AdminError::Internal)?;
    let token = crate::http::auth::bearer(req.headers()).ok_or(AdminError::MissingToken)?;
    let principal = state
        .tokens()
        .authenticate(token)
        .ok_or(AdminError::InvalidToken)?;
    if principal.scope < needed_scope(req.method()) {
        return Err(AdminError::InsufficientScope);
    }
    Ok(principal)
}

/// Middleware: every request under it needs an admin token with the scope its method needs; the
/// [`AdminPrincipal`] goes into the request's extensions for the access log.
pub async fn require_admin_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match authorize(&req) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(error @ (AdminError::MissingToken | AdminError::InvalidToken)) => {
            Ok(refuse_credentials(req, error).map_into_right_body())
        }
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_tokens_authenticate_with_their_scope() {
        let ring = AdminTokenRing::default();
        ring.replace(vec![ActiveAdminToken {
            hash: hash_key("sk-relay-admin-good"),
            id: "t1".into(),
            scope: AdminScope::Read,
        }]);
        let principal = ring.authenticate("sk-relay-admin-good").unwrap();
        assert_eq!(principal.scope, AdminScope::Read);
        assert!(ring.authenticate("sk-relay-admin-bad").is_none());
        ring.replace(Vec::new());
        assert!(ring.authenticate("sk-relay-admin-good").is_none());
    }

    #[test]
    fn only_reads_are_allowed_with_the_read_scope() {
        assert_eq!(needed_scope(&Method::GET), AdminScope::Read);
        for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
            assert_eq!(needed_scope(&method), AdminScope::Write);
        }
        assert!(AdminScope::Write > AdminScope::Read);
    }
}
