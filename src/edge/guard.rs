//! Bearer authentication, one guard for both planes: each plane says how it checks a token (a
//! [`Gate`]); the guard reads the token, puts what it stands for and the neutral [`Caller`] in
//! the request's extensions, and answers a refusal. A missing or unknown credential counts
//! against the client's address (`governance::auth_failures`): past the address's budget it is
//! answered 429 and leaves no access line.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use slog::warn;

use super::caller::Caller;
use super::context::{RequestContext, Unlogged};
use super::error::Throttled;
use super::phases::{Phase, Phases};
use crate::governance::auth_failures::{Address, Verdict};
use crate::state::AppState;

/// How one plane checks the bearer token of a request.
pub trait Gate: 'static {
    /// What an accepted token stands for; handlers read it from the request's extensions.
    type Identity: Clone + 'static;
    type Error: ResponseError + 'static;

    /// Checks the request's bearer token (`None` when it carries none).
    fn check(
        req: &ServiceRequest,
        token: Option<&str>,
    ) -> Result<Self::Identity, Refused<Self::Error>>;

    /// How the access line names the caller.
    fn caller(identity: &Self::Identity) -> Caller;
}

/// Why a request is not let through.
pub enum Refused<E> {
    /// No credential, or one that is not (or no longer) valid: counted against the address.
    Credentials(E),
    /// A valid credential that may not do this (or a fault of the relay's): answered as is.
    Other(E),
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

/// Middleware: every request under it must pass the gate `G`.
pub async fn require<G: Gate, B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let began = Instant::now();
    let checked = G::check(&req, bearer(req.headers()));
    Phases::add(&req, Phase::Auth, began.elapsed());
    match checked {
        Ok(identity) => {
            req.extensions_mut().insert(G::caller(&identity));
            req.extensions_mut().insert(identity);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(Refused::Credentials(error)) => {
            Ok(refuse_credentials(req, error).map_into_right_body())
        }
        Err(Refused::Other(error)) => Ok(req.error_response(error).map_into_right_body()),
    }
}

/// The answer to a request whose credentials failed (`error`, a 401): counted against its
/// client address; past the address's budget, a 429 with `Retry-After` instead, without an
/// access line, and one warning when the address starts being throttled.
fn refuse_credentials(req: ServiceRequest, error: impl ResponseError + 'static) -> ServiceResponse {
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
    req.error_response(Throttled::for_(retry_after))
}
