use actix::prelude::*;
use secrecy::SecretString;

use super::lease::Refusal;
use super::messages::*;
use super::AccountActor;
use crate::account::call::Outcome;
use crate::state::{AccountEvent, AccountState, AdminState, AuthState};
use crate::types::{AccountCredentials, AccountId, PoolRecord, RoutingParams};

#[test]
fn a_rejected_token_requires_reauth_until_new_credentials_arrive() {
    let active = AccountState::initial(AdminState::Active);
    let state = active.apply(&AccountEvent::UpstreamStatus(401));
    assert_eq!(state.name(), "reauth_required");
    assert!(!state.is_usable());
    let state = state.apply(&AccountEvent::UpstreamStatus(200));
    assert_eq!(state.name(), "reauth_required");
    let state = state.apply(&AccountEvent::CredentialsReplaced {
        admin: AdminState::Active,
        auth: AuthState::Valid,
    });
    assert_eq!(state, active);
}

#[test]
fn other_statuses_leave_an_active_account_active() {
    for status in [200, 400, 429, 500, 503] {
        let active = AccountState::initial(AdminState::Active);
        let state = active.apply(&AccountEvent::UpstreamStatus(status));
        assert_eq!(state, active, "status {status}");
    }
}

#[test]
fn a_disabled_account_stays_disabled_whatever_the_upstream_says() {
    let state =
        AccountState::initial(AdminState::Disabled).apply(&AccountEvent::UpstreamStatus(401));
    assert_eq!(state.name(), "disabled");
    assert!(!state.is_usable());
}

#[test]
fn a_draining_account_takes_no_new_calls_and_keeps_its_login() {
    let draining = AccountState::initial(AdminState::Draining);
    assert!(!draining.is_usable());
    assert_eq!(draining.name(), "draining");
    let state = draining.apply(&AccountEvent::UpstreamStatus(200));
    assert_eq!(state, draining);
    assert_eq!(AdminState::parse("draining"), Some(AdminState::Draining));
    assert_eq!(AdminState::parse("reauth_required"), None);
}

/// Collects what the account tells its router.
#[derive(Default)]
struct Listener(Vec<AccountStateChanged>);

impl Actor for Listener {
    type Context = Context<Self>;
}

impl Handler<AccountStateChanged> for Listener {
    type Result = ();
    fn handle(&mut self, msg: AccountStateChanged, _: &mut Context<Self>) {
        self.0.push(msg);
    }
}

/// Whether the last view the account told was usable.
#[derive(Message)]
#[rtype(result = "Option<bool>")]
struct Heard;

impl Handler<Heard> for Listener {
    type Result = Option<bool>;
    fn handle(&mut self, _: Heard, _: &mut Context<Self>) -> Option<bool> {
        self.0.last().map(|m| m.view.state.is_usable())
    }
}

pub(crate) fn credentials(id: &str, enabled: bool, version: i64) -> AccountCredentials {
    let admin = if enabled {
        AdminState::Active
    } else {
        AdminState::Disabled
    };
    AccountCredentials {
        id: AccountId::from(id),
        chatgpt_account_id: format!("chatgpt-{id}"),
        access_token: SecretString::from(format!("token-{id}-{version}")),
        is_fedramp: false,
        admin,
        auth: AuthState::Valid,
        routing: RoutingParams::default(),
        pool: PoolRecord::default(),
        version,
        plan: None,
        token_version: version,
        expires_at: Some(super::unix_now() + 3600),
        last_refresh: Some(super::unix_now()),
    }
}

#[actix_rt::test]
async fn leases_hold_a_slot_until_they_report() {
    let listener = Listener::default().start();
    let account = AccountActor::new(credentials("a", true, 1), listener.recipient()).start();
    let first = account.send(GrantLease).await.unwrap().unwrap();
    let second = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(first.credentials.chatgpt_account_id, "chatgpt-a");
    assert_eq!(account.send(GetAccountStatus).await.unwrap().in_flight, 2);
    first.report(Outcome::Completed { status: 200 });
    drop(second); // reports `Abandoned` on drop
    assert_eq!(account.send(GetAccountStatus).await.unwrap().in_flight, 0);
}

#[actix_rt::test]
async fn a_401_takes_the_account_out_and_tells_the_router() {
    let listener = Listener::default().start();
    let account =
        AccountActor::new(credentials("a", true, 1), listener.clone().recipient()).start();
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    lease.report(Outcome::Completed { status: 401 });
    let refused = account.send(GrantLease).await.unwrap();
    assert_eq!(refused.unwrap_err(), Refusal::Unusable("reauth_required"));
    assert_eq!(listener.send(Heard).await.unwrap(), Some(false));
    account
        .send(ReplaceCredentials(credentials("a", true, 2)))
        .await
        .unwrap();
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert!(secrecy::ExposeSecret::expose_secret(&lease.credentials.access_token).ends_with("-2"));
    assert_eq!(listener.send(Heard).await.unwrap(), Some(true));
}

#[actix_rt::test]
async fn a_disabled_account_grants_nothing() {
    let listener = Listener::default().start();
    let account = AccountActor::new(credentials("a", false, 1), listener.recipient()).start();
    let refused = account.send(GrantLease).await.unwrap();
    assert_eq!(refused.unwrap_err(), Refusal::Unusable("disabled"));
}

#[actix_rt::test]
async fn a_failed_call_is_remembered_for_operators() {
    let listener = Listener::default().start();
    let account = AccountActor::new(credentials("a", true, 1), listener.recipient()).start();
    let status = account.send(GetAccountStatus).await.unwrap();
    assert!(status.last_error.is_none());
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    lease.report(Outcome::Completed { status: 200 });
    assert!(account
        .send(GetAccountStatus)
        .await
        .unwrap()
        .last_error
        .is_none());
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    lease.report(Outcome::TransportFailed);
    let error = account
        .send(GetAccountStatus)
        .await
        .unwrap()
        .last_error
        .unwrap();
    assert!(error.message.contains("could not be reached"));
    assert!(error.at > 0);
}

mod counts;
pub(crate) mod health;
mod refresh;
mod scripted;
mod unsaved;
