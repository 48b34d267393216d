//! `AccountActor`: the single owner of one account's credentials, state and in-flight calls.
//! It is a thin shell: decisions live in [`state`], the actor applies them and tells the router.

pub mod messages;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;

use actix::{Actor, Context, Handler, Recipient};

use self::messages::{
    AccountStateChanged, AccountStatus, GetAccountStatus, GrantLease, LastError, Refusal,
    ReplaceCredentials, ReportOutcome, Retire,
};
use self::state::{AccountEvent, AccountState};
use crate::lease::{Lease, Outcome};
use crate::types::AccountCredentials;

pub struct AccountActor {
    credentials: AccountCredentials,
    state: AccountState,
    in_flight: usize,
    last_error: Option<LastError>,
    router: Recipient<AccountStateChanged>,
}

impl AccountActor {
    pub fn new(credentials: AccountCredentials, router: Recipient<AccountStateChanged>) -> Self {
        let state = AccountState::initial(credentials.admin);
        AccountActor {
            credentials,
            state,
            in_flight: 0,
            last_error: None,
            router,
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        let next = self.state.apply(&event);
        if next.is_usable() != self.state.is_usable() {
            self.router.do_send(AccountStateChanged {
                id: self.credentials.id.clone(),
                usable: next.is_usable(),
            });
        }
        self.state = next;
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;
}

/// Grants a lease while the account is usable; each lease holds one in-flight slot.
impl Handler<GrantLease> for AccountActor {
    type Result = Result<Lease, Refusal>;

    fn handle(&mut self, _: GrantLease, ctx: &mut Context<Self>) -> Self::Result {
        if !self.state.is_usable() {
            return Err(Refusal::Unusable(self.state.name()));
        }
        self.in_flight += 1;
        Ok(Lease::new(
            &self.credentials,
            actix::AsyncContext::address(ctx),
        ))
    }
}

/// Frees the lease's slot and lets the outcome move the state machine.
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
            self.apply(AccountEvent::UpstreamStatus(status));
        }
    }
}

/// Takes a new version of the account from the store (leases already granted keep their snapshot).
impl Handler<ReplaceCredentials> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceCredentials, _: &mut Context<Self>) {
        let admin = msg.0.admin;
        self.credentials = msg.0;
        self.apply(AccountEvent::CredentialsReplaced { admin });
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
