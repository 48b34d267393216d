//! Answering [`Acquire`]: order the accounts (conversation first, then the strategy), ask each
//! for a lease until one grants it, then record where the conversation went.

use std::time::SystemTime;

use actix::prelude::*;

use super::affinity::Placement;
use super::messages::{AccountUnreachable, Acquire, AcquireError, JudgeExhaustion};
use super::selection::{self, Exhaustion};
use super::RouterActor;
use crate::account::messages::{AccountView, GetAccountStatus, GrantLease};
use crate::account::AccountActor;
use crate::lease::Lease;
use crate::types::AccountId;

impl Handler<Acquire> for RouterActor {
    type Result = ResponseActFuture<Self, Result<Lease, AcquireError>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let now = SystemTime::now();
        if self.entries.is_empty() {
            return Box::pin(fut::ready(Err(AcquireError::EmptyPool)));
        }
        let bound = msg
            .affinity
            .as_deref()
            .and_then(|key| self.affinity.get(key, now))
            .cloned();
        let order = self.order(bound.as_ref(), &msg.exclude, &msg.exclude_plans, now);
        self.cursor = self.cursor.wrapping_add(1);
        let router = ctx.address();
        let ask = async move {
            let mut refused = Vec::new();
            for addr in order {
                match addr.send(GrantLease).await {
                    Ok(Ok(lease)) => return Ok(lease),
                    Ok(Err(_refused)) => refused.push(addr),
                    Err(_closed) => router.do_send(AccountUnreachable),
                }
            }
            Err(fresh_views(refused).await)
        };
        Box::pin(ask.into_actor(self).map(move |granted, act, _| {
            let mut lease = match granted {
                Ok(lease) => lease,
                Err(fresh) => return Err(act.judge(SystemTime::now(), &msg.exclude_plans, &fresh)),
            };
            lease.placement = act.place(msg.affinity.as_deref(), bound, &lease, now);
            Ok(lease)
        }))
    }
}

/// Judged on views asked of the accounts at that moment, like a failed [`Acquire`].
impl Handler<JudgeExhaustion> for RouterActor {
    type Result = ResponseActFuture<Self, AcquireError>;

    fn handle(&mut self, msg: JudgeExhaustion, _: &mut Context<Self>) -> Self::Result {
        let addrs = self
            .entries
            .values()
            .filter(|e| e.serves_plan(&msg.exclude_plans))
            .map(|e| e.addr.clone())
            .collect();
        Box::pin(
            fresh_views(addrs)
                .into_actor(self)
                .map(move |fresh, act, _| act.judge(SystemTime::now(), &msg.exclude_plans, &fresh)),
        )
    }
}

/// The views of these accounts, asked of the accounts themselves: the views
/// they pushed may still wait in the router's mailbox while their refusals are already here,
/// and a verdict on those would say "no usable account" where "busy" or "cooling until" is true.
async fn fresh_views(refused: Vec<Addr<AccountActor>>) -> Vec<AccountView> {
    let mut views = Vec::with_capacity(refused.len());
    for addr in refused {
        if let Ok(view) = addr.send(GetAccountStatus).await {
            views.push(view);
        }
    }
    views
}

impl RouterActor {
    /// The accounts to ask, best first: the conversation's account (when it can serve and this
    /// request has not tried it yet), then the strategy's order — among the accounts whose plan
    /// serves the model.
    fn order(
        &self,
        bound: Option<&AccountId>,
        exclude: &[AccountId],
        exclude_plans: &[String],
        now: SystemTime,
    ) -> Vec<Addr<AccountActor>> {
        let views: Vec<&AccountView> = self
            .entries
            .values()
            .filter(|e| e.serves_plan(exclude_plans))
            .map(|e| &e.view)
            .collect();
        let mut ids = selection::order(&views, self.config.strategy, self.cursor, exclude, now);
        if let Some(bound) = bound {
            if let Some(at) = ids.iter().position(|id| id == bound) {
                let id = ids.remove(at);
                ids.insert(0, id);
            }
        }
        ids.iter()
            .filter_map(|id| Some(self.entries.get(id)?.addr.clone()))
            .collect()
    }

    /// Records where the conversation of a granted lease went.
    fn place(
        &mut self,
        key: Option<&str>,
        bound: Option<AccountId>,
        lease: &Lease,
        now: SystemTime,
    ) -> Placement {
        let Some(key) = key else {
            return Placement::Unbound;
        };
        let granted = lease.account_id.clone();
        let placement = match bound {
            None => Placement::New,
            Some(bound) if bound == granted => Placement::Kept,
            // Still serving (this request failed there, or it is merely full): the binding stays.
            Some(bound) if self.serves(&bound, now) => return Placement::Detour { bound },
            Some(from) => {
                self.affinity_moves += 1;
                Placement::Moved { from }
            }
        };
        self.affinity.bind(key, granted, now);
        placement
    }

    /// Whether `id` can serve at `now` (capacity aside): a bound conversation waits for it.
    fn serves(&self, id: &AccountId, now: SystemTime) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| e.addr.connected() && e.view.serves_at(now))
    }

    /// Why no account took the request, judged over the accounts whose plan serves the model;
    /// `fresh` views (just asked of the accounts) stand in for the pushed ones.
    pub(super) fn judge(
        &self,
        now: SystemTime,
        exclude_plans: &[String],
        fresh: &[AccountView],
    ) -> AcquireError {
        let views: Vec<&AccountView> = self
            .entries
            .values()
            .filter(|e| e.serves_plan(exclude_plans))
            .map(|e| fresh.iter().find(|v| v.id == e.view.id).unwrap_or(&e.view))
            .collect();
        match selection::exhaustion(&views, now) {
            // Accounts exist, but none of a plan that serves the model.
            Exhaustion::Empty if !self.entries.is_empty() => AcquireError::NoUsableAccount,
            Exhaustion::Empty => AcquireError::EmptyPool,
            Exhaustion::AllCooling { until, usage_limit } => {
                AcquireError::AllCooling { until, usage_limit }
            }
            Exhaustion::Busy => AcquireError::Busy,
            Exhaustion::NoneUsable => AcquireError::NoUsableAccount,
        }
    }
}
