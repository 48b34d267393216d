//! The accounts' token refresher with the audit trail in front of its two endings an operator
//! must answer for: a refresh that failed, and an account that needs a new login
//! (`reauth_required`). Each is an administrative act of the relay itself, on the account; the
//! rest passes straight through.

use std::sync::Arc;

use compact_str::ToCompactString;
use futures_util::future::LocalBoxFuture;
use relay_actors::{AccountId, RefreshAttempt, RefreshedTokens, SaveAttempt, TokenRefresher};

use crate::audit::{ActorKind, Audit, Record};
use crate::obs::bounded;

/// The longest reason kept: the relay's explanation and the issuer's code after it.
const REASON: usize = 512;

/// `inner`, recording its failures in `audit`.
pub struct AuditedRefresher {
    pub inner: Arc<dyn TokenRefresher>,
    pub audit: Audit,
}

impl AuditedRefresher {
    /// The relay's row for `action` on account `id`; `reason` is the issuer's answer as the
    /// refresher already redacted it for the log, bounded.
    fn record(&self, action: &str, id: &AccountId, reason: &str) {
        let mut record = Record::act(ActorKind::Relay, action);
        record.account_id = Some(id.to_compact_string());
        record.target = Some(id.to_compact_string());
        record.result = Some(bounded(reason, REASON).into());
        self.audit.record(record);
    }
}

impl TokenRefresher for AuditedRefresher {
    fn refresh(
        &self,
        id: AccountId,
        token_version: i64,
        unsaved: Option<RefreshedTokens>,
    ) -> LocalBoxFuture<'static, RefreshAttempt> {
        self.inner.refresh(id, token_version, unsaved)
    }

    fn save(&self, id: AccountId, tokens: RefreshedTokens) -> LocalBoxFuture<'static, SaveAttempt> {
        self.inner.save(id, tokens)
    }

    fn unsaved_at_stop(&self, id: AccountId) {
        self.inner.unsaved_at_stop(id)
    }

    fn reauth_required(
        &self,
        id: AccountId,
        token_version: i64,
        reason: String,
    ) -> LocalBoxFuture<'static, ()> {
        self.record("account.reauth_required", &id, &reason);
        self.inner.reauth_required(id, token_version, reason)
    }

    fn failed(
        &self,
        id: AccountId,
        token_version: i64,
        error: String,
    ) -> LocalBoxFuture<'static, ()> {
        self.record("account.refresh_failed", &id, &error);
        self.inner.failed(id, token_version, error)
    }
}
