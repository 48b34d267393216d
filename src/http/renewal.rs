//! The reactive half of token refresh: an upstream 401 makes the account refresh its token once
//! (single-flight: however many requests saw a 401 with the same token, one refresh runs) and
//! the request is sent once more, on the same account, with the new token. A second 401 reaches
//! the account as an outcome and takes it out of rotation until a human logs it in again.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use awc::error::SendRequestError;
use bytes::Bytes;
use relay_actors::{Lease, Refusal};
use slog::{info, warn};

use super::error::ApiError;
use super::transport::Via;
use crate::edge::context::RequestContext;
use crate::upstream::{UpstreamClient, UpstreamResponse};

/// How sending a request upstream ended, with the lease that is still to report.
pub(super) enum Sent {
    Answered(Lease, UpstreamResponse),
    Unreachable(Lease, SendRequestError),
    /// The token was rejected and no renewed one could be had.
    NotRenewed(Refusal),
}

/// Sends `payload` with `lease` (over `via`); on a 401, renews the lease's token and sends once
/// more.
pub(super) async fn send_renewing_on_401(
    (upstream, via): (&UpstreamClient, &Via<'_>),
    lease: Lease,
    headers: &HeaderMap,
    payload: Bytes,
    ctx: &RequestContext,
) -> Sent {
    let first = match via.send(upstream, &lease, headers, payload.clone()).await {
        Ok(response) if response.status() == StatusCode::UNAUTHORIZED => response,
        Ok(response) => return Sent::Answered(lease, response),
        Err(error) => return Sent::Unreachable(lease, error),
    };
    // Dropping the 401 closes its connection; its body is not needed.
    drop(first);
    let account = lease.account_id.to_string();
    let lease = match lease.renew_after_unauthorized().await {
        Ok(lease) => lease,
        Err(refusal) => return Sent::NotRenewed(refusal),
    };
    info!(ctx.log, "upstream rejected the access token; retrying once with a renewed one";
        "account_id" => account, "token_version" => lease.token_version);
    match via.send(upstream, &lease, headers, payload).await {
        Ok(response) => Sent::Answered(lease, response),
        Err(error) => Sent::Unreachable(lease, error),
    }
}

/// The client's error when the token was rejected and no renewed one came: a refresh still
/// running (or an account that left rotation meanwhile) is worth a retry; a failed refresh is the
/// upstream's.
pub(super) fn not_renewed(refusal: &Refusal, ctx: &RequestContext) -> ApiError {
    warn!(ctx.log, "upstream rejected the access token and it could not be renewed";
        "reason" => refusal.to_string());
    match refusal {
        Refusal::RefreshFailed(_) => {
            ApiError::UpstreamFailed("the upstream rejected the account's credentials")
        }
        Refusal::RefreshPending | Refusal::Unusable(_) | Refusal::Full => ApiError::NoUsableAccount,
    }
}
