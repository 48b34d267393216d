//! The router's lane: the pool as request handlers read it, so that the common lease is taken
//! on the handler's own thread instead of by a round trip to the actors' thread.
//!
//! The router publishes its members (each account's pushed view, plan, address and gate) here
//! whenever they change; conversation affinity and the round-robin cursor live here, shared by
//! both ways of taking a lease:
//! - [`Lane::try_grant`], on the caller's thread: finds the member the router would order first
//!   (without ordering the rest) and, when it holds a pass (see `account/gate.rs`) with a fresh
//!   token and a free slot, takes the slot and hands out a lease. Nothing else is tried there.
//! - the router's [`Acquire`] handler, for everything else: asking the accounts one by one,
//!   refreshes, half-open probes, and the verdict when none can serve.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use actix::Addr;

use super::affinity::AffinityTable;
use super::messages::Acquire;
use super::selection::{self, Candidate};
use crate::account::gate::Gate;
use crate::account::lease::{Lease, Placement};
use crate::account::messages::AccountView;
use crate::account::{unix_now, AccountActor};
use crate::config::PoolConfig;
use crate::types::AccountId;

/// One account of the pool as the lane sees it.
#[derive(Clone)]
pub(crate) struct Member {
    /// As the account last pushed it (its in-flight count is read from `gate` instead).
    pub view: Arc<AccountView>,
    pub plan: Option<Arc<str>>,
    pub addr: Addr<AccountActor>,
    pub gate: Arc<Gate>,
}

impl Member {
    /// False when the account's plan is one of `exclude_plans` (plans that do not serve the
    /// request's model); an account whose plan is unknown is never excluded for it.
    pub fn serves_plan(&self, exclude_plans: &[String]) -> bool {
        self.plan
            .as_deref()
            .is_none_or(|plan| !exclude_plans.iter().any(|p| p == plan))
    }
}

impl Candidate for &Member {
    fn view(&self) -> &AccountView {
        &self.view
    }

    fn in_flight(&self) -> usize {
        self.gate.in_flight()
    }
}

pub(crate) struct Lane {
    members: RwLock<Arc<Vec<Member>>>,
    affinity: Mutex<AffinityTable>,
    cursor: AtomicUsize,
    affinity_moves: AtomicU64,
    config: Arc<PoolConfig>,
}

impl Lane {
    pub fn new(config: Arc<PoolConfig>) -> Lane {
        Lane {
            members: RwLock::default(),
            affinity: Mutex::new(AffinityTable::new(
                config.affinity_ttl,
                config.affinity_capacity,
            )),
            cursor: AtomicUsize::new(0),
            affinity_moves: AtomicU64::new(0),
            config,
        }
    }

    /// The members, in the pool's order.
    pub fn members(&self) -> Arc<Vec<Member>> {
        Arc::clone(&self.members.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn publish(&self, members: Vec<Member>) {
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(members);
    }

    fn affinity(&self) -> MutexGuard<'_, AffinityTable> {
        self.affinity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Conversations currently bound to an account.
    pub fn conversations(&self) -> usize {
        self.affinity().len()
    }

    /// Bound conversations moved because their account could not serve, since startup.
    pub fn affinity_moves(&self) -> u64 {
        self.affinity_moves.load(Ordering::Relaxed)
    }

    /// The next turn of the round-robin rotation.
    pub fn next_turn(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }

    /// The account the request's conversation is bound to, if any: the account it is pinned to,
    /// else its key's binding, else the account that wrote the encrypted items it replays.
    pub fn bound(&self, request: &Acquire, now: SystemTime) -> Option<AccountId> {
        if let Some(pinned) = &request.pinned {
            return Some(pinned.clone());
        }
        let key = request.affinity.as_deref();
        key.and_then(|key| self.affinity().get(key, now).cloned())
            .or_else(|| request.written_by.clone())
    }

    /// The members to ask, best first: the conversation's account (when it can serve and this
    /// request has not tried it yet), then the strategy's order — among the accounts whose plan
    /// serves the model.
    pub fn order<'m>(
        &self,
        members: &'m [Member],
        bound: Option<&AccountId>,
        request: &Acquire,
        cursor: usize,
        now: SystemTime,
    ) -> Vec<&'m Member> {
        let eligible: Vec<&Member> = members
            .iter()
            .filter(|m| m.serves_plan(&request.exclude_plans))
            .collect();
        let strategy = self.config.strategy;
        let mut ordered: Vec<&Member> =
            selection::order(&eligible, strategy, cursor, &request.exclude, now)
                .into_iter()
                .copied()
                .collect();
        if let Some(bound) = bound {
            if let Some(at) = ordered.iter().position(|m| m.view.id == *bound) {
                let member = ordered.remove(at);
                ordered.insert(0, member);
            }
        }
        ordered
    }

    /// The first member of [`Lane::order`], found in one pass over the pool.
    pub fn best<'m>(
        &self,
        members: &'m [Member],
        bound: Option<&AccountId>,
        request: &Acquire,
        cursor: usize,
        now: SystemTime,
    ) -> Option<&'m Member> {
        let serving = members
            .iter()
            .filter(|m| m.serves_plan(&request.exclude_plans));
        let strategy = self.config.strategy;
        let best = selection::best(serving.clone(), strategy, cursor, &request.exclude, now);
        match bound {
            // The conversation's account goes first when it is among the eligible ones.
            Some(bound) if best.is_some_and(|m| m.view.id != *bound) => serving
                .clone()
                .find(|m| m.view.id == *bound)
                .filter(|m| selection::is_eligible(m, &request.exclude, now))
                .or(best),
            _ => best,
        }
    }

    /// A lease taken here, on the caller's thread, when the best account holds a pass with a
    /// fresh token and a free slot; `None` sends the request to the router.
    pub fn try_grant(&self, request: &Acquire) -> Option<Lease> {
        let now = SystemTime::now();
        let members = self.members();
        let bound = self.bound(request, now);
        let cursor = self.next_turn();
        let best = self.best(&members, bound.as_ref(), request, cursor, now)?;
        let pass = best.gate.pass()?;
        if !pass.fresh(unix_now(), &self.config.refresh) || !best.addr.connected() {
            return None;
        }
        if !best.gate.reserve(pass.max_in_flight) {
            return None;
        }
        let mut lease = Lease::from_pass(&pass, best.addr.clone(), Arc::clone(&best.gate));
        lease.placement = self.place(request, bound, &lease.account_id, &members, now);
        Some(lease)
    }

    /// Records where the conversation of a granted lease went.
    pub fn place(
        &self,
        request: &Acquire,
        bound: Option<AccountId>,
        granted: &AccountId,
        members: &[Member],
        now: SystemTime,
    ) -> Placement {
        let Some(key) = request.affinity.as_deref() else {
            // No key to bind: placed against the account that wrote its items, if known.
            return match bound {
                None => Placement::Unbound,
                Some(bound) => self.placed(bound, granted, members, now),
            };
        };
        let placement = match bound {
            None => Placement::New,
            Some(bound) if bound == *granted => Placement::Kept,
            // Still serving (this request failed there, or it is merely full): the binding stays.
            Some(bound) if serves(members, &bound, now) => return Placement::Detour { bound },
            Some(from) => {
                self.affinity_moves.fetch_add(1, Ordering::Relaxed);
                Placement::Moved { from }
            }
        };
        self.affinity().bind(key, granted.clone(), now);
        placement
    }

    /// Where a request went against the account it should have gone to, without a binding.
    fn placed(
        &self,
        bound: AccountId,
        granted: &AccountId,
        members: &[Member],
        now: SystemTime,
    ) -> Placement {
        if bound == *granted {
            return Placement::Kept;
        }
        if serves(members, &bound, now) {
            return Placement::Detour { bound };
        }
        self.affinity_moves.fetch_add(1, Ordering::Relaxed);
        Placement::Moved { from: bound }
    }
}

/// Whether `id` can serve at `now` (capacity aside): a bound conversation waits for it.
fn serves(members: &[Member], id: &AccountId, now: SystemTime) -> bool {
    members
        .iter()
        .find(|m| m.view.id == *id)
        .is_some_and(|m| m.addr.connected() && m.view.serves_at(now))
}

#[cfg(test)]
mod tests;
