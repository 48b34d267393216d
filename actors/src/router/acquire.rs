//! Answering [`Acquire`]: order the accounts (conversation first, then the strategy), ask each
//! for a lease until one grants it, then record where the conversation went.

use std::time::SystemTime;

use actix::prelude::*;

use super::affinity::Placement;
use super::messages::{AccountUnreachable, Acquire, AcquireError, JudgeExhaustion};
use super::selection::{self, Exhaustion};
use super::RouterActor;
use crate::account::messages::{AccountView, GrantLease};
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
        let order = self.order(bound.as_ref(), &msg.exclude, now);
        self.cursor = self.cursor.wrapping_add(1);
        let router = ctx.address();
        let ask = async move {
            for addr in order {
                match addr.send(GrantLease).await {
                    Ok(Ok(lease)) => return Some(lease),
                    Ok(Err(_refused)) => continue,
                    Err(_closed) => router.do_send(AccountUnreachable),
                }
            }
            None
        };
        Box::pin(ask.into_actor(self).map(move |granted, act, _| {
            let Some(mut lease) = granted else {
                return Err(act.judge(SystemTime::now()));
            };
            lease.placement = act.place(msg.affinity.as_deref(), bound, &lease, now);
            Ok(lease)
        }))
    }
}

impl Handler<JudgeExhaustion> for RouterActor {
    type Result = MessageResult<JudgeExhaustion>;

    fn handle(&mut self, _: JudgeExhaustion, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.judge(SystemTime::now()))
    }
}

impl RouterActor {
    /// The accounts to ask, best first: the conversation's account (when it can serve and this
    /// request has not tried it yet), then the strategy's order.
    fn order(
        &self,
        bound: Option<&AccountId>,
        exclude: &[AccountId],
        now: SystemTime,
    ) -> Vec<Addr<AccountActor>> {
        let views: Vec<&AccountView> = self.entries.values().map(|e| &e.view).collect();
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

    pub(super) fn judge(&self, now: SystemTime) -> AcquireError {
        let views: Vec<&AccountView> = self.entries.values().map(|e| &e.view).collect();
        match selection::exhaustion(&views, now) {
            Exhaustion::Empty => AcquireError::EmptyPool,
            Exhaustion::AllCooling { until, usage_limit } => {
                AcquireError::AllCooling { until, usage_limit }
            }
            Exhaustion::Busy => AcquireError::Busy,
            Exhaustion::NoneUsable => AcquireError::NoUsableAccount,
        }
    }
}
