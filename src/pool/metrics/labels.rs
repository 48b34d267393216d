//! The label sets of the account and pool families. Every value is bounded: an account is its
//! relay id (the operator creates accounts; `bounds` caps how many), a state, window, status or
//! reason is one of a fixed set of names. Building one on the request path copies no text: the
//! account id is shared (`Arc`), the rest are `&'static str` or numbers.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use relay_actors::AccountId;

pub use crate::obs::metrics::Text;

/// An account, by its relay id (never an email).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Account(pub AccountId);

impl EncodeLabelValue for Account {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// How one upstream call of an account ended: the HTTP status it answered, or no answer.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CallStatus {
    Status(u16),
    /// No status line came back: the connection failed or broke off.
    Transport,
    /// No status line came back in time.
    Timeout,
}

impl EncodeLabelValue for CallStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            CallStatus::Status(status) => EncodeLabelValue::encode(status, encoder),
            CallStatus::Transport => EncodeLabelValue::encode(&"transport", encoder),
            CallStatus::Timeout => EncodeLabelValue::encode(&"timeout", encoder),
        }
    }
}

/// `account_upstream_calls_total`.
#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub account: Account,
    pub status: CallStatus,
}
crate::obs::metrics::cheap_hash!(CallLabels { account, status });

/// `account_failovers_total`: `reason` is the failover record's bounded name.
#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    pub account: Account,
    pub reason: &'static str,
}
crate::obs::metrics::cheap_hash!(FailoverLabels { account, reason });

/// The families with one series per account.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub account: Account,
}

/// `account_info`: what an operator joins an account's series with. The label is the
/// operator's (by default the masked email the admin API shows, never the address itself).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub account: Account,
    pub label: Text,
    /// `""` while the plan is not known.
    pub plan: Text,
}

/// `account_state`: one series per state name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub account: Account,
    pub state: &'static str,
}

/// The quota families: `window` is `primary` (the short window) or `secondary` (the long one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub account: Account,
    pub window: &'static str,
}

/// `account_breaker_transitions_total`: `to` is `open`, `half_open` or `closed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub account: Account,
    pub to: &'static str,
}

/// `account_refreshes_total`: `result` is `ok`, `failed`, `rejected` or `unsaved`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    pub account: Account,
    pub result: &'static str,
}

/// `pool_accounts`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolStateLabels {
    pub state: &'static str,
}

/// The label sets whose series belong to one account: they leave with it.
pub trait OfAccount {
    fn account(&self) -> &AccountId;
}

impl OfAccount for CallLabels {
    fn account(&self) -> &AccountId {
        &self.account.0
    }
}

impl OfAccount for FailoverLabels {
    fn account(&self) -> &AccountId {
        &self.account.0
    }
}
