//! The periodic health probe: an account whose breaker waits for a probe, or whose cooldown ran
//! out without a call proving it serves again, is checked with a cheap upstream call through the
//! [`HealthProber`](crate::ports::HealthProber) port. The probe takes the half-open slot, so a
//! real call and a probe never test a half-open account at once.

use std::time::SystemTime;

use actix::prelude::*;

use super::messages::ProbeNow;
use super::report::signal_of_probe;
use super::AccountActor;
use crate::ports::{ProbeResult, ProbeTarget};
use crate::state::AccountEvent;

impl Handler<ProbeNow> for AccountActor {
    type Result = ();

    fn handle(&mut self, _: ProbeNow, ctx: &mut Context<Self>) {
        let Some(prober) = self.config.prober.clone() else {
            return;
        };
        let now = SystemTime::now();
        if !self.state.is_usable() || self.probing || !self.state.health.needs_probe(now) {
            return;
        }
        self.probing = true;
        if self.state.health.half_open(now) {
            self.counts.breaker.trial(self.state.health.breaker);
        }
        self.gate.occupy();
        self.publish();
        let target = ProbeTarget {
            chatgpt_account_id: self.credentials.chatgpt_account_id.clone(),
            access_token: self.credentials.access_token.clone(),
            is_fedramp: self.credentials.is_fedramp,
        };
        let probe = prober.probe(target);
        ctx.spawn(probe.into_actor(self).map(|result, act, ctx| {
            act.probing = false;
            act.gate.release();
            if let ProbeResult::Status(status) = result {
                act.apply(AccountEvent::UpstreamStatus(status));
            }
            act.apply_signal(signal_of_probe(result), ctx);
            act.publish();
        }));
    }
}
