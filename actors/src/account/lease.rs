//! A lease: the right to make one upstream call with one account's credentials, where the
//! router placed it, and the messages a lease sends back to its account when it ends.

use std::sync::Arc;

use actix::{Addr, Message};

use super::call::{CallCredentials, Outcome, UpstreamFacts};
use super::gate::{Gate, Pass};
use super::report::signal_of;
use super::AccountActor;
use crate::state::health::Signal;
use crate::types::AccountId;

/// Where a request was placed with respect to its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The request carries no conversation key.
    Unbound,
    /// The conversation was new (or forgotten) and is now bound to the lease's account.
    New,
    /// The conversation stayed on its account.
    Kept,
    /// The conversation's account could not serve; it is now bound to the lease's account.
    Moved { from: AccountId },
    /// This attempt runs elsewhere (its account failed this request), the binding is unchanged.
    Detour { bound: AccountId },
}

/// Why an account did not grant a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("account is {0}")]
    Unusable(&'static str),
    #[error("account has its maximum of calls in flight")]
    Full,
    #[error("the access token expired and its refresh did not finish in time")]
    RefreshPending,
    /// The refresh failed; the text is safe to show (no secret).
    #[error("the token refresh failed: {0}")]
    RefreshFailed(String),
}

/// Sent by a [`Lease`] when it ends, exactly once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    pub outcome: Outcome,
    pub facts: UpstreamFacts,
    /// The lease was the one call of a half-open breaker.
    pub probe: bool,
    /// The token version the lease was granted with: a 401 on a replaced token is stale.
    pub token_version: i64,
}

/// The upstream answered 401 to `lease`: refresh (once per token version, however many
/// requests report it) and grant a lease with the new token for one retry. The old lease's slot
/// is released without an outcome.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, Refusal>")]
pub struct RenewAfterUnauthorized {
    pub lease: Lease,
}

/// Granted by an [`AccountActor`] or, while the account serves plainly, by the router's lane on
/// the caller's own thread (see `account/gate.rs`); holds a snapshot of the credentials and one
/// in-flight slot. Reports its outcome exactly once: through [`Lease::report`] /
/// [`Lease::finish`] or, failing that, on drop. A plain ending (success, client gone) only frees
/// the slot when the account's gate says it would change nothing; every other one goes to the
/// account.
pub struct Lease {
    pub account_id: AccountId,
    pub credentials: Arc<CallCredentials>,
    /// How the router placed the request with respect to its conversation.
    pub placement: Placement,
    /// The token version of `access_token`.
    pub token_version: i64,
    outcome: Outcome,
    facts: UpstreamFacts,
    /// The one call a half-open breaker lets through.
    probe: bool,
    owner: Option<Addr<AccountActor>>,
    gate: Arc<Gate>,
}

impl Lease {
    /// A lease on `credentials` (token version `token_version`) whose slot the caller has
    /// already taken on `gate`.
    pub(crate) fn new(
        account_id: AccountId,
        credentials: Arc<CallCredentials>,
        token_version: i64,
        owner: Addr<AccountActor>,
        gate: Arc<Gate>,
        probe: bool,
    ) -> Lease {
        Lease {
            account_id,
            credentials,
            placement: Placement::Unbound,
            token_version,
            outcome: Outcome::Abandoned,
            facts: UpstreamFacts::default(),
            probe,
            owner: Some(owner),
            gate,
        }
    }

    /// A lease granted from the account's pass; the caller has already taken its slot on `gate`.
    pub(crate) fn from_pass(pass: &Pass, owner: Addr<AccountActor>, gate: Arc<Gate>) -> Lease {
        let credentials = Arc::clone(&pass.credentials);
        Lease::new(
            pass.id.clone(),
            credentials,
            pass.token_version,
            owner,
            gate,
            false,
        )
    }

    /// Notes what the upstream said (rate-limit headers, error details); reported with the
    /// outcome. Later facts replace earlier ones field by field.
    pub fn observe(&mut self, facts: UpstreamFacts) {
        let UpstreamFacts {
            rate_limits,
            error_code,
            resets_at,
            retry_after,
        } = facts;
        self.facts.rate_limits = rate_limits.or(self.facts.rate_limits);
        self.facts.error_code = error_code.or(self.facts.error_code.take());
        self.facts.resets_at = resets_at.or(self.facts.resets_at);
        self.facts.retry_after = retry_after.or(self.facts.retry_after);
    }

    /// Whether ending with `outcome`, after what was observed so far, would count as a failure
    /// against the account's circuit breaker (a 5xx, a transport failure, a timeout, an overload
    /// inside a stream). Such a failure may still turn out to be the request's: the caller can
    /// hold the lease until another account has shown whether it fails the same way.
    pub fn counts_as_failure(&self, outcome: Outcome) -> bool {
        signal_of(outcome, &self.facts, None) == Signal::Failure
    }

    /// Ends the lease now with `outcome`.
    pub fn report(mut self, outcome: Outcome) {
        self.outcome = outcome;
        drop(self);
    }

    /// Ends the lease with `outcome` and waits until the account has taken it in, so that what
    /// the caller asks the router next already reflects it (failover decisions).
    pub async fn finish(mut self, outcome: Outcome) {
        if let Some(owner) = self.owner.take() {
            if self.settles_alone(outcome) {
                self.gate.release();
                return;
            }
            let message = self.message(outcome);
            // A dead account actor has nothing to update; the router restarts it.
            let _ = owner.send(message).await;
        }
    }

    /// Whether `outcome` would change nothing in the account: a plain ending (not a probe, no
    /// error facts, no quota the account does not already keep) while its gate holds a pass,
    /// i.e. while its health is clean. Such an ending only frees the slot.
    fn settles_alone(&self, outcome: Outcome) -> bool {
        let plain = matches!(
            outcome,
            Outcome::Completed { status: 200..=299 }
                | Outcome::ClientGone
                | Outcome::Abandoned
                | Outcome::RequestAtFault
        );
        let UpstreamFacts {
            rate_limits,
            error_code,
            resets_at,
            retry_after,
        } = &self.facts;
        plain
            && !self.probe
            && error_code.is_none()
            && resets_at.is_none()
            && retry_after.is_none()
            && self.gate.pass().is_some_and(|pass| {
                rate_limits
                    .as_ref()
                    .is_none_or(|quota| pass.knows_quota(quota))
            })
    }

    fn message(&mut self, outcome: Outcome) -> ReportOutcome {
        ReportOutcome {
            outcome,
            facts: std::mem::take(&mut self.facts),
            probe: self.probe,
            token_version: self.token_version,
        }
    }

    /// The upstream rejected this lease's token (401): asks the account for a refreshed token
    /// (single-flight per token version) and returns a new lease on the same account for one
    /// retry. This lease ends without an outcome.
    pub async fn renew_after_unauthorized(self) -> Result<Lease, Refusal> {
        let Some(owner) = self.owner.clone() else {
            return Err(Refusal::Unusable("gone"));
        };
        owner
            .send(RenewAfterUnauthorized { lease: self })
            .await
            .unwrap_or(Err(Refusal::Unusable("gone")))
    }

    /// Ends the lease without an outcome; the account frees the slot itself. Returns whether
    /// it was a half-open probe.
    pub(crate) fn release(mut self) -> bool {
        self.owner = None;
        self.probe
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            if self.settles_alone(self.outcome) {
                self.gate.release();
                return;
            }
            let message = self.message(self.outcome);
            owner.do_send(message);
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("account_id", &self.account_id)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}
