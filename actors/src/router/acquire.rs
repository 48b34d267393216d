//! Answering [`Acquire`] — what the lane did not grant on the caller's thread: order the accounts
//! as the lane does (conversation first, then the strategy), ask each for a lease until one
//! grants it, then record where the conversation went.

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;

use super::messages::{AccountUnreachable, Acquire, AcquireError, JudgeExhaustion};
use super::selection::{self, Exhaustion};
use super::RouterActor;
use crate::account::lease::Lease;
use crate::account::messages::{AccountView, GetAccountStatus, GrantLease};
use crate::account::AccountActor;

impl Handler<Acquire> for RouterActor {
    type Result = ResponseActFuture<Self, Result<Lease, AcquireError>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let now = SystemTime::now();
        if self.entries.is_empty() {
            return Box::pin(fut::ready(Err(AcquireError::EmptyPool)));
        }
        let lane = Arc::clone(&self.lane);
        let members = lane.members();
        let bound = lane.bound(&msg, now);
        let order: Vec<Addr<AccountActor>> = lane
            .order(&members, bound.as_ref(), &msg, lane.next_turn(), now)
            .into_iter()
            .map(|m| m.addr.clone())
            .collect();
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
            let members = act.lane.members();
            lease.placement = act
                .lane
                .place(&msg, bound, &lease.account_id, &members, now);
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
            .filter(|e| e.member.serves_plan(&msg.exclude_plans))
            .map(|e| e.member.addr.clone())
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
    /// Why no account took the request, judged over the accounts whose plan serves the model;
    /// `fresh` views (just asked of the accounts) stand in for the pushed ones.
    pub(super) fn judge(
        &self,
        now: SystemTime,
        exclude_plans: &[String],
        fresh: &[AccountView],
    ) -> AcquireError {
        let views: Vec<AccountView> = self
            .entries
            .values()
            .filter(|e| e.member.serves_plan(exclude_plans))
            .map(|e| match fresh.iter().find(|v| v.id == e.member.view.id) {
                Some(view) => view.clone(),
                // A pushed view's in-flight count lags: the gate's is live.
                None => AccountView {
                    in_flight: e.member.gate.in_flight(),
                    ..AccountView::clone(&e.member.view)
                },
            })
            .collect();
        let views: Vec<&AccountView> = views.iter().collect();
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
