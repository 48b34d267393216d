//! `AccountActor`: the single owner of one account's credentials, state and in-flight calls.
//! It is a thin shell: decisions live in [`crate::state`] (its [`health`](crate::state::health)
//! and [`refresh`] rules among them) and [`report`]; the actor applies them, tells the router its
//! new [`AccountView`], saves its pool state, and runs token refreshes through the
//! [`TokenRefresher`](crate::ports::TokenRefresher) port, one at a time (see `flight.rs`), keeping
//! a rotated set the store could not take until a write lands (see `unsaved.rs`).

pub mod call;
pub mod counts;
mod flight;
pub(crate) mod gate;
pub mod lease;
pub mod messages;
mod probe;
pub mod report;
#[cfg(test)]
pub(crate) mod tests;
mod unsaved;

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;

use self::call::{CallCredentials, Outcome};
use self::counts::AccountCounts;
use self::flight::Flight;
use self::gate::{Gate, Pass};
use self::lease::{Lease, Refusal, RenewAfterUnauthorized, ReportOutcome};
use self::messages::{
    AccountStateChanged, AccountView, GetAccountStatus, GrantLease, LastError, RefreshNow,
    ReplaceCredentials, Retire,
};
use crate::config::PoolConfig;
use crate::state::health::{Availability, Health, Signal};
use crate::state::quota::QuotaSnapshot;
use crate::state::refresh::{self, Need};
use crate::state::{AccountEvent, AccountState};
use crate::types::{AccountCredentials, PoolRecord};

pub struct AccountActor {
    credentials: AccountCredentials,
    /// What its leases call with, shared by all of them until the token set changes.
    call: Arc<CallCredentials>,
    state: AccountState,
    quota: Option<QuotaSnapshot>,
    /// Calls in flight and the pass workers grant with (see `gate.rs`).
    gate: Arc<Gate>,
    /// The one call of a half-open breaker (a lease or a health probe) is in flight.
    probing: bool,
    last_error: Option<LastError>,
    config: Arc<PoolConfig>,
    router: Recipient<AccountStateChanged>,
    saving: bool,
    save_again: bool,
    /// The quota as last handed to the sink: a new one is saved only when it says more.
    saved_quota: Option<QuotaSnapshot>,
    flight: Flight,
    /// Breaker moves and refresh results, for operators (see `counts.rs`).
    counts: AccountCounts,
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
        state.auth = credentials.auth.clone();
        let flight = Flight::new(&config.refresh);
        let quota = credentials.pool.quota;
        AccountActor {
            call: CallCredentials::of(&credentials),
            credentials,
            state,
            quota,
            gate: Arc::default(),
            probing: false,
            last_error: None,
            config,
            router,
            saving: false,
            save_again: false,
            saved_quota: quota,
            flight,
            counts: AccountCounts::default(),
        }
    }

    /// The gate the router's lane grants through.
    pub(crate) fn gate(&self) -> Arc<Gate> {
        Arc::clone(&self.gate)
    }

    fn max_in_flight(&self) -> usize {
        self.credentials
            .routing
            .max_in_flight
            .unwrap_or(self.config.default_max_in_flight) as usize
    }

    pub(crate) fn view(&self) -> AccountView {
        AccountView {
            id: self.credentials.id.clone(),
            state: self.state.clone(),
            in_flight: self.gate.in_flight(),
            max_in_flight: self.max_in_flight(),
            routing: self.credentials.routing,
            quota: self.quota,
            probing: self.probing,
            refreshing: self.flight.is_refreshing(),
            tokens_unsaved: self.flight.unsaved.tokens.is_some(),
            last_error: self.last_error.clone(),
            token_expires_at: self.credentials.expires_at,
            counts: self.counts,
        }
    }

    /// Tells the router the account's new view, and renews or withdraws the pass.
    fn publish(&self) {
        self.gate.set_pass(self.pass());
        self.router
            .do_send(AccountStateChanged { view: self.view() });
    }

    /// A pass while a plain success would change nothing: the account is usable and its health
    /// clean (a cooling that has run out, an open or half-open breaker, or failures counted
    /// towards one all need the actor to see the next outcome).
    fn pass(&self) -> Option<Arc<Pass>> {
        let clean = self.state.health == Health::default();
        (self.state.is_usable() && clean).then(|| {
            let credentials = &self.credentials;
            Arc::new(Pass {
                id: credentials.id.clone(),
                credentials: Arc::clone(&self.call),
                token_version: credentials.token_version,
                max_in_flight: self.max_in_flight(),
                expires_at: credentials.expires_at,
                last_refresh: credentials.last_refresh,
                saved_quota: self.saved_quota,
            })
        })
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
            self.counts
                .breaker
                .moved(self.state.health.breaker, next.breaker);
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
        self.saved_quota = self.quota;
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
        // Checked again when the slot is taken ([`Gate::reserve`]): workers take slots too.
        if self.gate.is_full(self.max_in_flight()) {
            return Err(Refusal::Full);
        }
        Ok(probe)
    }

    fn need(&self) -> Need {
        refresh::need(
            self.credentials.expires_at,
            self.credentials.last_refresh,
            unix_now(),
            &self.config.refresh,
        )
    }

    /// A lease on the current token, when the account admits a call and its token has not
    /// expired.
    fn grant(&mut self, ctx: &mut Context<Self>) -> Result<Lease, Refusal> {
        let probe = self.admit(SystemTime::now())?;
        if self.need() == Need::Expired {
            return Err(Refusal::RefreshPending);
        }
        if !self.gate.reserve(self.max_in_flight()) {
            return Err(Refusal::Full);
        }
        if probe {
            self.probing = true;
            self.counts.breaker.trial(self.state.health.breaker);
        }
        self.publish();
        Ok(Lease::new(
            self.credentials.id.clone(),
            Arc::clone(&self.call),
            self.credentials.token_version,
            ctx.address(),
            self.gate(),
            probe,
        ))
    }

    /// Takes a version of the account read from the store. Tokens only move forward: a read that
    /// raced with this actor's own refresh (older token version) changes only the operator's
    /// intent and routing. A newer token set is a new login and brings its stored login state;
    /// the same one keeps this actor's verdict (it may know of a failure not yet persisted).
    fn take_credentials(&mut self, incoming: AccountCredentials) {
        let admin = incoming.admin;
        let event = if incoming.token_version > self.credentials.token_version {
            self.flight.reset(&self.config.refresh);
            AccountEvent::CredentialsReplaced {
                admin,
                auth: incoming.auth.clone(),
            }
        } else {
            AccountEvent::AdminChanged { admin }
        };
        if incoming.token_version >= self.credentials.token_version {
            self.call = CallCredentials::of(&incoming);
            self.credentials = incoming;
        } else {
            self.credentials.admin = admin;
            self.credentials.routing = incoming.routing;
            self.credentials.version = incoming.version;
        }
        self.apply(event);
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped_with_unsaved();
    }

    /// Keeps idle logins alive: a login nobody uses still refreshes before it expires.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish();
        ctx.run_interval(self.config.refresh.check_every, |act, ctx| {
            match act.need() {
                _ if !act.state.is_usable() => {}
                Need::None => {}
                Need::Proactive => act.start_proactive_refresh(ctx),
                Need::Expired => act.start_refresh(ctx, false),
            }
        });
    }
}

/// Grants a lease while the account serves and has room; each lease holds one in-flight slot.
/// A token about to expire is refreshed in the background while the current one serves; an
/// expired token makes the request wait (bounded) for the refresh.
impl Handler<GrantLease> for AccountActor {
    type Result = ResponseActFuture<Self, Result<Lease, Refusal>>;

    fn handle(&mut self, _: GrantLease, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(refused) = self.admit(SystemTime::now()) {
            return Box::pin(fut::ready(Err(refused)));
        }
        match self.need() {
            Need::None => Box::pin(fut::ready(self.grant(ctx))),
            Need::Proactive => {
                self.start_proactive_refresh(ctx);
                Box::pin(fut::ready(self.grant(ctx)))
            }
            Need::Expired => self.grant_after_refresh(ctx, false),
        }
    }
}

/// Frees the lease's slot and lets the outcome move the state machine.
impl Handler<ReportOutcome> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, ctx: &mut Context<Self>) {
        self.gate.release();
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
            if self
                .saved_quota
                .is_none_or(|saved| quota.worth_saving_over(&saved))
            {
                self.save(ctx);
            }
        }
        if let Outcome::Completed { status } = msg.outcome {
            // A 401 answered for a token this account has already replaced is stale.
            let stale = msg.token_version < self.credentials.token_version;
            if !(status == 401 && stale) {
                self.apply(AccountEvent::UpstreamStatus(status));
            }
        }
        let signal = report::signal_of(msg.outcome, &msg.facts, self.quota.as_ref());
        self.apply_signal(signal, ctx);
        self.publish();
    }
}

/// Takes a new version of the account from the store (leases already granted keep their
/// snapshot). The same token set keeps the login's verdict; health is the actor's own.
impl Handler<ReplaceCredentials> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceCredentials, _: &mut Context<Self>) {
        self.take_credentials(msg.0);
        self.publish();
    }
}

/// A 401 seen with token version `v`: when this account already holds a newer token, the retry
/// uses it at once; otherwise one refresh runs (or is joined) and the retry waits for it.
impl Handler<RenewAfterUnauthorized> for AccountActor {
    type Result = ResponseActFuture<Self, Result<Lease, Refusal>>;

    fn handle(&mut self, msg: RenewAfterUnauthorized, ctx: &mut Context<Self>) -> Self::Result {
        let seen = msg.lease.token_version;
        if msg.lease.release() {
            self.probing = false;
        }
        self.gate.release();
        self.publish();
        if seen < self.credentials.token_version || !self.state.is_usable() {
            return Box::pin(fut::ready(self.grant(ctx)));
        }
        self.grant_after_refresh(ctx, false)
    }
}

/// An operator's "refresh now": runs even inside a retry pause, and for an account the operator
/// has disabled or is draining (keeping its login alive); never for a login that needs a human.
impl Handler<RefreshNow> for AccountActor {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, _: RefreshNow, ctx: &mut Context<Self>) -> Self::Result {
        if !self.state.auth.is_valid() {
            return Box::pin(fut::ready(Err(Refusal::Unusable("reauth_required"))));
        }
        let done = self.join_refresh(ctx, true);
        let wait = self.config.refresh.wait;
        Box::pin(
            async move { tokio::time::timeout(wait, done).await }
                .into_actor(self)
                .map(|result, _, _| flight::settled(result)),
        )
    }
}

/// Stops the account, once a refresh or write in flight has ended and a rotated set the store
/// has not taken was written once more (bounded); answered when it has stopped.
impl Handler<Retire> for AccountActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Self::Result {
        let stopped = self.retire(ctx);
        Box::pin(async move {
            let _ = stopped.await;
        })
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
        Outcome::Completed { .. }
        | Outcome::ClientGone
        | Outcome::Abandoned
        | Outcome::RequestAtFault => None,
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
