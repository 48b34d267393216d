//! An account's gate: what a request handler may decide on its own thread, without a round trip
//! to the account's actor.
//!
//! The actor stays the one owner of the account's state; the gate is what it publishes of it for
//! the common case. While the account serves plainly — the operator keeps it active, its login
//! is valid, its health is clean (no cooling, breaker closed with no failure counted) — the actor
//! hands out a [`Pass`]: a snapshot of the credentials and what a worker needs to check that the
//! token is still fresh. A worker holding a pass reserves an in-flight slot atomically and calls;
//! a call that then ends plainly (success, or the client gone) frees its slot here and tells the
//! actor nothing, because it would change nothing. Everything else — no pass, a full account, a
//! token due for refresh, a half-open probe, a failure, a quota worth saving — goes through the
//! actor as before.
//!
//! The in-flight count lives here and only here, so the actor's grants, the workers' grants and
//! the router's ordering all see one number.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::call::CallCredentials;
use crate::state::quota::QuotaSnapshot;
use crate::state::refresh::{self, Need, RefreshPolicy};
use crate::types::AccountId;

/// What a worker needs to grant a lease on the account by itself; present only while a plain
/// success would change nothing in the account's state.
#[derive(Debug)]
pub(crate) struct Pass {
    pub id: AccountId,
    pub credentials: Arc<CallCredentials>,
    pub token_version: i64,
    /// The effective cap on calls in flight; 0 means none.
    pub max_in_flight: usize,
    /// The token's `exp` and last refresh (unix seconds): once a refresh is due, grants go
    /// through the actor, which starts it.
    pub expires_at: Option<i64>,
    pub last_refresh: Option<i64>,
    /// The quota the actor last saved: a report whose quota says nothing more needs no actor.
    pub saved_quota: Option<QuotaSnapshot>,
}

impl Pass {
    /// Whether the token serves at `now` with no refresh due.
    pub fn fresh(&self, now: i64, policy: &RefreshPolicy) -> bool {
        refresh::need(self.expires_at, self.last_refresh, now, policy) == Need::None
    }

    /// Whether `quota`, seen on a call, is already what the actor keeps (else the actor takes it).
    pub fn knows_quota(&self, quota: &QuotaSnapshot) -> bool {
        self.saved_quota
            .is_some_and(|saved| !quota.worth_saving_over(&saved))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Gate {
    in_flight: AtomicUsize,
    pass: RwLock<Option<Arc<Pass>>>,
}

impl Gate {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether `max` (0: no cap) slots are taken.
    pub fn is_full(&self, max: usize) -> bool {
        at_cap(self.in_flight(), max)
    }

    /// Takes a slot unless `max` (0: no cap) are taken already.
    pub fn reserve(&self, max: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (!at_cap(n, max)).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes a slot whatever the cap (a health probe is the account's own call).
    pub fn occupy(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub fn release(&self) {
        // Never below zero, whatever a buggy caller does.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn pass(&self) -> Option<Arc<Pass>> {
        self.pass.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_pass(&self, pass: Option<Arc<Pass>>) {
        *self.pass.write().unwrap_or_else(|e| e.into_inner()) = pass;
    }
}

fn at_cap(in_flight: usize, max: usize) -> bool {
    max > 0 && in_flight >= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reserved_up_to_the_cap_and_never_go_below_zero() {
        let gate = Gate::default();
        assert!(gate.reserve(2));
        assert!(gate.reserve(2));
        assert!(!gate.reserve(2));
        gate.occupy();
        assert_eq!(gate.in_flight(), 3);
        for _ in 0..5 {
            gate.release();
        }
        assert_eq!(gate.in_flight(), 0);
        assert!(gate.reserve(0), "0 means no cap");
    }

    #[test]
    fn a_pass_is_fresh_until_a_refresh_is_due() {
        let policy = RefreshPolicy::default();
        let pass = Pass {
            id: AccountId::from("a"),
            credentials: Arc::new(CallCredentials {
                chatgpt_account_id: "c".to_owned(),
                access_token: "t".into(),
                is_fedramp: false,
            }),
            token_version: 1,
            max_in_flight: 0,
            expires_at: Some(10_000),
            last_refresh: Some(0),
            saved_quota: None,
        };
        assert!(pass.fresh(10_000 - policy.skew_secs - 1, &policy));
        assert!(!pass.fresh(10_000 - policy.skew_secs, &policy));
        assert!(!pass.fresh(10_000, &policy));
    }
}
