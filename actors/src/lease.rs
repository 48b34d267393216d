//! A lease: the right to make one upstream call with one account's credentials.

use actix::Addr;
use secrecy::SecretString;

use crate::account::messages::{Refusal, RenewAfterUnauthorized, ReportOutcome};
use crate::account::AccountActor;
use crate::types::AccountId;

/// How a leased call ended, as the account needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered and the exchange ran to its end (any HTTP status).
    Completed { status: u16 },
    /// The upstream could not be reached or the connection failed mid-way.
    TransportFailed,
    /// The client went away before the exchange ended.
    ClientGone,
    /// The lease was dropped without a report (a bug or a cancelled handler).
    Abandoned,
}

/// Granted by an [`AccountActor`]; holds a snapshot of the credentials and one in-flight slot.
/// Reports its outcome exactly once: through [`Lease::report`] or, failing that, on drop.
pub struct Lease {
    pub account_id: AccountId,
    pub chatgpt_account_id: String,
    pub access_token: SecretString,
    pub is_fedramp: bool,
    /// The token version of `access_token`.
    pub token_version: i64,
    outcome: Outcome,
    owner: Option<Addr<AccountActor>>,
}

impl Lease {
    pub(crate) fn new(
        credentials: &crate::types::AccountCredentials,
        owner: Addr<AccountActor>,
    ) -> Lease {
        Lease {
            account_id: credentials.id.clone(),
            chatgpt_account_id: credentials.chatgpt_account_id.clone(),
            access_token: credentials.access_token.clone(),
            is_fedramp: credentials.is_fedramp,
            token_version: credentials.token_version,
            outcome: Outcome::Abandoned,
            owner: Some(owner),
        }
    }

    /// Ends the lease now with `outcome`.
    pub fn report(mut self, outcome: Outcome) {
        self.outcome = outcome;
        drop(self);
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

    /// Ends the lease without an outcome; the account frees the slot itself.
    pub(crate) fn release(mut self) {
        self.owner = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.do_send(ReportOutcome {
                outcome: self.outcome,
                token_version: self.token_version,
            });
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}
