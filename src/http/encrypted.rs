//! Encrypted reasoning replayed on an account that did not write it. Only the
//! account that produced a `reasoning.encrypted_content` item can read it back; any other
//! answers 400 `invalid_encrypted_content`.
//!
//! The relay's decision: such a 400 ends the request — it is not failed over (no other account
//! can read the item either, so further attempts only spend quota) and the input is not
//! rewritten (dropping the client's reasoning items behind its back would change the
//! conversation silently). Instead the decision is logged with both accounts, and the client
//! gets a 400 `invalid_encrypted_content` that says what happened and what to do, rather than
//! the upstream's bare "could not be verified".

use relay_actors::{Lease, Placement};
use slog::warn;

use super::error::ApiError;
use crate::edge::context::RequestContext;

/// The upstream's code for encrypted content it cannot read.
const CODE: &str = "invalid_encrypted_content";

/// Replaces the upstream's error for a request whose encrypted reasoning another account wrote;
/// any other error is returned as it is.
pub fn explain(
    error: ApiError,
    carries_encrypted: bool,
    lease: &Lease,
    ctx: &RequestContext,
) -> ApiError {
    let unreadable = matches!(&error,
        ApiError::UpstreamRejected { code: Some(code), .. } if code == CODE);
    if !carries_encrypted || !unreadable {
        return error;
    }
    let (why, bound) = match &lease.placement {
        Placement::Moved { from } => (
            "the account that holds this conversation cannot serve right now, and the relay moved it to another account",
            Some(from),
        ),
        Placement::Detour { bound } => (
            "the account that holds this conversation failed this request, and the relay tried another account",
            Some(bound),
        ),
        // Unbound / New / Kept: the relay does not know (any more) which account wrote it —
        // no conversation key, an expired binding, or a restart of the relay.
        _ => (
            "the relay does not know which of its accounts wrote it (no conversation key, an expired binding, or a relay restart)",
            None,
        ),
    };
    warn!(ctx.log, "encrypted reasoning unreadable on this account; the request ends here instead of failing over";
        "account_id" => lease.account_id.to_string(),
        "bound_account_id" => bound.map(ToString::to_string));
    ApiError::InvalidRequest {
        message: format!(
            "This conversation replays encrypted reasoning that only the relay account which wrote it can read, and {why}. \
             Try again later, or resend the conversation without its reasoning items (or start a new one)."
        ),
        param: Some("input"),
        code: Some(CODE),
    }
}
