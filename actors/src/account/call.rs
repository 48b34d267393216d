//! One upstream call as the account sees it: what the call presents upstream
//! ([`CallCredentials`]) and how it ended ([`Outcome`], [`UpstreamFacts`]). A leaf of the account
//! module: the lease, the gate and the health report all speak it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::state::quota::QuotaSnapshot;

/// How a leased call ended, as the account needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered and the exchange ran to its end (any HTTP status).
    Completed { status: u16 },
    /// The upstream could not be reached or the connection failed mid-way.
    TransportFailed,
    /// The upstream did not answer, or went silent, for longer than allowed.
    TimedOut,
    /// A 200 stream carried `response.failed` before any output item (its code is in the facts).
    FailedBeforeOutput,
    /// The call failed the way the same request failed on another account: the request, not
    /// the account, is at fault, so the account's health does not count it.
    RequestAtFault,
    /// The client went away before the exchange ended.
    ClientGone,
    /// The lease was dropped without a report (a bug or a cancelled handler).
    Abandoned,
}

/// What the upstream said beyond the status, parsed by the caller (the actors know no HTTP).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamFacts {
    /// From the `x-codex-primary-*` / `x-codex-secondary-*` headers.
    pub rate_limits: Option<QuotaSnapshot>,
    /// The upstream's error code or type (`usage_limit_reached`, `server_is_overloaded`, …).
    pub error_code: Option<String>,
    /// When a usage limit resets (`resets_at` of a 429 body).
    pub resets_at: Option<SystemTime>,
    /// `Retry-After` or `resets_in_seconds`.
    pub retry_after: Option<Duration>,
}

/// What a call presents upstream. Shared by every lease on the same token set: an access token
/// is a JWT of a couple of kilobytes, and a held stream keeps its lease for as long as it lasts.
pub struct CallCredentials {
    pub chatgpt_account_id: String,
    pub access_token: SecretString,
    pub is_fedramp: bool,
}

impl CallCredentials {
    pub(crate) fn of(credentials: &crate::types::AccountCredentials) -> Arc<CallCredentials> {
        Arc::new(CallCredentials {
            chatgpt_account_id: credentials.chatgpt_account_id.clone(),
            access_token: credentials.access_token.clone(),
            is_fedramp: credentials.is_fedramp,
        })
    }
}

impl std::fmt::Debug for CallCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCredentials")
            .field("chatgpt_account_id", &self.chatgpt_account_id)
            .field("is_fedramp", &self.is_fedramp)
            .finish_non_exhaustive()
    }
}
