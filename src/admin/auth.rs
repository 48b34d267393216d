//! Admin-token authentication: the [`Gate`] the edge's guard applies to the admin plane. Tokens
//! are checked against the in-memory ring (`credentials`; `codex-relay admin-token create|revoke`
//! takes effect within seconds). Reading needs any token; every other method needs the write
//! scope. A missing or unknown token counts against the client's address like a bad API key does.

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::web;

use super::error::AdminError;
use super::AdminState;
use crate::credentials::AdminPrincipal;
use crate::edge::caller::Caller;
use crate::edge::guard::{Gate, Refused};
use crate::store::admin_tokens::AdminScope;

/// The admin plane's gate: an active admin token with the scope the method needs; its
/// [`AdminPrincipal`] goes to the handlers.
pub struct AdminTokens;

impl Gate for AdminTokens {
    type Identity = AdminPrincipal;
    type Error = AdminError;

    fn check(
        req: &ServiceRequest,
        token: Option<&str>,
    ) -> Result<AdminPrincipal, Refused<AdminError>> {
        let state = req
            .app_data::<web::Data<AdminState>>()
            .ok_or(Refused::Other(AdminError::Internal))?;
        let token = token.ok_or(Refused::Credentials(AdminError::MissingToken))?;
        let principal = state
            .tokens()
            .find(token)
            .ok_or(Refused::Credentials(AdminError::InvalidToken))?;
        if principal.scope < needed_scope(req.method()) {
            return Err(Refused::Other(AdminError::InsufficientScope));
        }
        Ok(principal)
    }

    fn caller(principal: &AdminPrincipal) -> Caller {
        Caller::AdminToken {
            token_id: principal.token_id.clone(),
        }
    }
}

/// The scope a request needs: looking is reading, anything else is writing.
fn needed_scope(method: &Method) -> AdminScope {
    if method == Method::GET || method == Method::HEAD {
        AdminScope::Read
    } else {
        AdminScope::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_allowed_with_the_read_scope() {
        assert_eq!(needed_scope(&Method::GET), AdminScope::Read);
        for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
            assert_eq!(needed_scope(&method), AdminScope::Write);
        }
        assert!(AdminScope::Write > AdminScope::Read);
    }
}
