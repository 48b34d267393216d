//! `AccountActor`: the single owner of one account's credentials, state and in-flight calls.
//! It is a thin shell: decisions live in [`state`], [`health`] and [`report`]; the actor applies
//! them, tells the router its new [`AccountView`](messages::AccountView) and saves its pool state.

pub mod health;
pub mod messages;
mod probe;
pub mod quota;
pub mod report;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use secrecy::ExposeSecret;

use self::health::{Availability, Signal};
use self::messages::{
    AccountStateChanged, AccountView, GetAccountStatus, GrantLease, LastError, Refusal,
    ReplaceCredentials, ReportOutcome, Retire,
};
use self::quota::QuotaSnapshot;
use self::state::{AccountEvent, AccountState};
use crate::config::PoolConfig;
use crate::lease::{Lease, Outcome};
use crate::types::{AccountCredentials, PoolRecord};

pub struct AccountActor {
    credentials: AccountCredentials,
    state: AccountState,
    quota: Option<QuotaSnapshot>,
    in_flight: usize,
    /// The one call of a half-open breaker (a lease or a health probe) is in flight.
    probing: bool,
    last_error: Option<LastError>,
    config: Arc<PoolConfig>,
    router: Recipient<AccountStateChanged>,
    saving: bool,
    save_again: bool,
}

impl AccountActor {
    /// An actor with the default pool configuration (no persistence, no probes).
    pub fn new(credentials: AccountCredentials, router: Recipient<AccountStateChanged>) -> Self {
        Self::with_config(credentials, router, Arc::new(PoolConfig::default()))
    }

    pub fn with_config(
        credentials: AccountCredentials,
        router: Recipient<AccountStateChanged>,
        config: Arc<PoolConfig>,
    ) -> Self {
        let mut state = AccountState::initial(credentials.admin);
        state.health = credentials.pool.health;
        let quota = credentials.pool.quota;
        AccountActor {
            credentials,
            state,
            quota,
            in_flight: 0,
            probing: false,
            last_error: None,
            config,
            router,
            saving: false,
            save_again: false,
        }
    }

    pub(crate) fn view(&self) -> AccountView {
        let max = self
            .credentials
            .routing
            .max_in_flight
            .unwrap_or(self.config.default_max_in_flight);
        AccountView {
            id: self.credentials.id.clone(),
            state: self.state.clone(),
            in_flight: self.in_flight,
            max_in_flight: max as usize,
            routing: self.credentials.routing,
            quota: self.quota,
            probing: self.probing,
            last_error: self.last_error.clone(),
        }
    }

    fn publish(&self) {
        self.router
            .do_send(AccountStateChanged { view: self.view() });
    }

    fn apply(&mut self, event: AccountEvent) {
        self.state = self.state.apply(&event);
    }

    /// Moves the health part; saves it when it changed.
    fn apply_signal(&mut self, signal: Signal, ctx: &mut Context<Self>) {
        let next = self
            .state
            .health
            .apply(signal, SystemTime::now(), &self.config.health);
        if next != self.state.health {
            self.state.health = next;
            self.save(ctx);
        }
    }

    /// Saves health and quota through the sink, one write at a time; changes made while a write
    /// runs are saved by one more write after it (so an older state never lands last).
    fn save(&mut self, ctx: &mut Context<Self>) {
        let Some(sink) = self.config.sink.clone() else {
            return;
        };
        if self.saving {
            self.save_again = true;
            return;
        }
        self.saving = true;
        self.save_again = false;
        let record = PoolRecord {
            health: self.state.health,
            quota: self.quota,
        };
        let write = sink.save(self.credentials.id.clone(), record);
        ctx.spawn(write.into_actor(self).map(|_, act, ctx| {
            act.saving = false;
            if act.save_again {
                act.save(ctx);
            }
        }));
    }

    /// Whether a lease can be granted now; `Ok(true)` when it is a half-open probe.
    fn admit(&self, now: SystemTime) -> Result<bool, Refusal> {
        if !self.state.is_usable() {
            return Err(Refusal::Unusable(self.state.name()));
        }
        let probe = match self.state.health.availability(now) {
            Availability::Ready => false,
            Availability::HalfOpen if !self.probing => true,
            _ => return Err(Refusal::Unusable(self.state.name_at(now))),
        };
        let view = self.view();
        if view.is_full() {
            return Err(Refusal::Full);
        }
        Ok(probe)
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.publish();
    }
}

/// Grants a lease while the account serves and has room; each lease holds one in-flight slot.
impl Handler<GrantLease> for AccountActor {
    type Result = Result<Lease, Refusal>;

    fn handle(&mut self, _: GrantLease, ctx: &mut Context<Self>) -> Self::Result {
        let probe = self.admit(SystemTime::now())?;
        self.probing |= probe;
        self.in_flight += 1;
        self.publish();
        Ok(Lease::new(&self.credentials, ctx.address(), probe))
    }
}

/// Frees the lease's slot and lets the outcome move the state machine.
impl Handler<ReportOutcome> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, ctx: &mut Context<Self>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if msg.probe {
            self.probing = false;
        }
        if let Some(message) = failure_of(msg.outcome) {
            self.last_error = Some(LastError {
                message,
                at: unix_now(),
            });
        }
        if let Some(quota) = msg.facts.rate_limits {
            self.quota = Some(quota);
            self.save(ctx);
        }
        if let Outcome::Completed { status } = msg.outcome {
            self.apply(AccountEvent::UpstreamStatus(status));
        }
        let signal = report::signal_of(msg.outcome, &msg.facts, self.quota.as_ref());
        self.apply_signal(signal, ctx);
        self.publish();
    }
}

/// Takes a new version of the account from the store (leases already granted keep their
/// snapshot). The same credentials keep the login's verdict; health is the actor's own.
impl Handler<ReplaceCredentials> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceCredentials, _: &mut Context<Self>) {
        let admin = msg.0.admin;
        let same_login = msg.0.chatgpt_account_id == self.credentials.chatgpt_account_id
            && msg.0.access_token.expose_secret() == self.credentials.access_token.expose_secret();
        self.credentials = msg.0;
        self.apply(match same_login {
            true => AccountEvent::AdminChanged { admin },
            false => AccountEvent::CredentialsReplaced { admin },
        });
        self.publish();
    }
}

impl Handler<Retire> for AccountActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetAccountStatus> for AccountActor {
    type Result = MessageResult<GetAccountStatus>;

    fn handle(&mut self, _: GetAccountStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view())
    }
}

/// What operators should read about a call that went wrong; `None` for one that did not.
fn failure_of(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Completed { status } if status >= 400 => {
            Some(format!("the upstream answered HTTP {status}"))
        }
        Outcome::TransportFailed => Some("the upstream could not be reached".to_owned()),
        Outcome::TimedOut => Some("the upstream did not answer in time".to_owned()),
        Outcome::FailedBeforeOutput => {
            Some("the upstream failed the response before any output".to_owned())
        }
        Outcome::Completed { .. } | Outcome::ClientGone | Outcome::Abandoned => None,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
