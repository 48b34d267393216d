//! `AccountActor`: the single owner of one account's credentials, state and in-flight calls.
//! It is a thin shell: decisions live in [`state`] and [`refresh`], the actor applies them, runs
//! refreshes through the [`TokenRefresher`](crate::ports::TokenRefresher) port (one at a time,
//! see `flight.rs`) and tells the router when it becomes usable or unusable.

mod auth;
mod flight;
pub mod messages;
pub mod refresh;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, ResponseActFuture, WrapFuture,
};

use self::flight::Flight;
use self::messages::{
    AccountStateChanged, AccountStatus, GetAccountStatus, GrantLease, LastError, RefreshNow,
    Refusal, RenewAfterUnauthorized, ReplaceCredentials, ReportOutcome, Retire,
};
use self::refresh::{Need, RefreshPolicy};
use self::state::{AccountEvent, AccountState};
use crate::lease::{Lease, Outcome};
use crate::ports::TokenRefresher;
use crate::types::AccountCredentials;

pub struct AccountActor {
    credentials: AccountCredentials,
    state: AccountState,
    in_flight: usize,
    last_error: Option<LastError>,
    router: Recipient<AccountStateChanged>,
    refresher: Arc<dyn TokenRefresher>,
    policy: Arc<RefreshPolicy>,
    flight: Flight,
}

impl AccountActor {
    pub fn new(
        credentials: AccountCredentials,
        router: Recipient<AccountStateChanged>,
        refresher: Arc<dyn TokenRefresher>,
        policy: Arc<RefreshPolicy>,
    ) -> Self {
        let state = AccountState::new(credentials.admin, credentials.auth.clone());
        let flight = Flight::new(&policy);
        AccountActor {
            credentials,
            state,
            in_flight: 0,
            last_error: None,
            router,
            refresher,
            policy,
            flight,
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        let next = self.state.apply(&event);
        if next.is_usable() != self.state.is_usable() {
            self.tell_router(next.is_usable());
        }
        self.state = next;
    }

    fn tell_router(&self, usable: bool) {
        self.router.do_send(AccountStateChanged {
            id: self.credentials.id.clone(),
            usable,
        });
    }

    fn need(&self) -> Need {
        refresh::need(
            self.credentials.expires_at,
            self.credentials.last_refresh,
            unix_now(),
            &self.policy,
        )
    }

    /// A lease on the current token, when the account is usable and the token has not expired.
    fn grant(&mut self, ctx: &mut Context<Self>) -> Result<Lease, Refusal> {
        if !self.state.is_usable() {
            return Err(Refusal::Unusable(self.state.name()));
        }
        if self.need() == Need::Expired {
            return Err(Refusal::RefreshPending);
        }
        self.in_flight += 1;
        Ok(Lease::new(&self.credentials, ctx.address()))
    }

    /// Takes a version of the account read from the store. Tokens only move forward: a read that
    /// raced with this actor's own refresh (older token version) changes only the operator's
    /// intent. The login state follows the store only with newer tokens (a new login).
    fn take_credentials(&mut self, incoming: AccountCredentials) {
        let newer = incoming.token_version > self.credentials.token_version;
        let admin = incoming.admin;
        let auth = newer.then(|| incoming.auth.clone());
        if incoming.token_version >= self.credentials.token_version {
            self.credentials = incoming;
        } else {
            self.credentials.admin = admin;
            self.credentials.version = incoming.version;
        }
        if newer {
            self.flight.reset(&self.policy);
        }
        self.apply(AccountEvent::CredentialsReplaced { admin, auth });
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    /// Keeps idle logins alive: a login nobody uses still refreshes before it expires.
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.policy.check_every, |act, ctx| {
            if act.state.is_usable() && act.need() != Need::None {
                act.start_refresh(ctx, false);
            }
        });
    }
}

/// Grants a lease while the account is usable; each lease holds one in-flight slot. A token that
/// is about to expire is refreshed in the background while the current one serves; an expired
/// token makes the request wait (bounded) for the refresh.
impl Handler<GrantLease> for AccountActor {
    type Result = ResponseActFuture<Self, Result<Lease, Refusal>>;

    fn handle(&mut self, _: GrantLease, ctx: &mut Context<Self>) -> Self::Result {
        if !self.state.is_usable() {
            return Box::pin(actix::fut::ready(Err(Refusal::Unusable(self.state.name()))));
        }
        match self.need() {
            Need::None => Box::pin(actix::fut::ready(self.grant(ctx))),
            Need::Proactive => {
                self.start_refresh(ctx, false);
                Box::pin(actix::fut::ready(self.grant(ctx)))
            }
            Need::Expired => self.grant_after_refresh(ctx, false),
        }
    }
}

/// Frees the lease's slot and lets the outcome move the state machine. A 401 on a token this
/// account has already replaced says nothing about the current one.
impl Handler<ReportOutcome> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, _: &mut Context<Self>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(message) = failure_of(msg.outcome) {
            self.last_error = Some(LastError {
                message,
                at: unix_now(),
            });
        }
        if let Outcome::Completed { status } = msg.outcome {
            let stale = msg.token_version < self.credentials.token_version;
            if !(status == 401 && stale) {
                self.apply(AccountEvent::UpstreamStatus(status));
            }
        }
    }
}

/// A 401 seen with token version `v`: when this account already holds a newer token, the retry
/// uses it at once; otherwise one refresh runs (or is joined) and the retry waits for it.
impl Handler<RenewAfterUnauthorized> for AccountActor {
    type Result = ResponseActFuture<Self, Result<Lease, Refusal>>;

    fn handle(&mut self, msg: RenewAfterUnauthorized, ctx: &mut Context<Self>) -> Self::Result {
        let seen = msg.lease.token_version;
        msg.lease.release();
        self.in_flight = self.in_flight.saturating_sub(1);
        if seen < self.credentials.token_version || !self.state.is_usable() {
            return Box::pin(actix::fut::ready(self.grant(ctx)));
        }
        self.grant_after_refresh(ctx, false)
    }
}

/// An operator's "refresh now": runs even inside a retry pause, and for an account the operator
/// has disabled or is draining (keeping its login alive); never for a login that needs a human.
impl Handler<RefreshNow> for AccountActor {
    type Result = ResponseActFuture<Self, Result<(), Refusal>>;

    fn handle(&mut self, _: RefreshNow, ctx: &mut Context<Self>) -> Self::Result {
        // A dead login cannot be refreshed: it needs a new one, not another token call.
        if !self.state.auth.is_valid() {
            return Box::pin(actix::fut::ready(Err(Refusal::Unusable("reauth_required"))));
        }
        let done = self.join_refresh(ctx, true);
        let wait = self.policy.wait;
        Box::pin(
            async move { tokio::time::timeout(wait, done).await }
                .into_actor(self)
                .map(|result, _, _| flight::settled(result)),
        )
    }
}

/// Takes a new version of the account from the store (leases already granted keep their snapshot).
impl Handler<ReplaceCredentials> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceCredentials, _: &mut Context<Self>) {
        let before = self.state.is_usable();
        self.take_credentials(msg.0);
        // The router re-guessed from the stored row, which may be wrong (a login known dead
        // here but not yet persisted): correct it even when nothing changed here.
        if self.state.is_usable() == before {
            self.tell_router(before);
        }
    }
}

impl Handler<Retire> for AccountActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}

impl Handler<GetAccountStatus> for AccountActor {
    type Result = actix::MessageResult<GetAccountStatus>;

    fn handle(&mut self, _: GetAccountStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(AccountStatus {
            id: self.credentials.id.clone(),
            state: self.state.clone(),
            in_flight: self.in_flight,
            refreshing: self.flight.is_running(),
            last_error: self.last_error.clone(),
        })
    }
}

/// What operators should read about a call that went wrong; `None` for one that did not.
fn failure_of(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Completed { status } if status >= 400 => {
            Some(format!("the upstream answered HTTP {status}"))
        }
        Outcome::TransportFailed => Some("the upstream could not be reached".to_owned()),
        Outcome::Completed { .. } | Outcome::ClientGone | Outcome::Abandoned => None,
    }
}
