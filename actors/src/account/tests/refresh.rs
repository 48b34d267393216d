//! The refresh flow of one account against a scripted refresher: single flight, proactive and
//! expired tokens, renewal after a 401, permanent and transient failures.

use std::time::Duration;

use actix::prelude::*;

use super::super::lease::Refusal;
use super::super::messages::*;
use super::super::{unix_now, AccountActor};
use super::scripted::{eventually, policy, start, start_with, token, Answer, ScriptedRefresher};
use super::{credentials, Heard};
use crate::account::call::Outcome;
use crate::state::refresh::RefreshPolicy;

#[actix_rt::test]
async fn fifty_requests_on_an_expired_token_wait_for_one_refresh() {
    let refresher = ScriptedRefresher::with(&[]);
    let (account, _) = start(-10, &refresher);
    let requests = (0..50).map(|_| account.send(GrantLease));
    let leases = futures_util::future::join_all(requests).await;
    for lease in leases {
        let lease = lease.unwrap().unwrap();
        assert_eq!(
            (lease.token_version, token(&lease)),
            (2, "token-a-2".to_owned())
        );
    }
    assert_eq!(refresher.calls(), 1);
}

#[actix_rt::test]
async fn a_token_about_to_expire_serves_while_it_is_refreshed_in_the_background() {
    let refresher = ScriptedRefresher::with(&[]);
    let (account, _) = start(60, &refresher);
    let first = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(first.token_version, 1, "the current token serves at once");
    let second = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(second.token_version, 1);
    eventually(|| refresher.calls() == 1).await;
    for _ in 0..100 {
        let lease = account.send(GrantLease).await.unwrap().unwrap();
        if lease.token_version == 2 {
            assert_eq!(refresher.calls(), 1);
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the refreshed token was never served");
}

#[actix_rt::test]
async fn a_dead_refresh_token_takes_the_account_out_with_the_reason() {
    for code in [
        "refresh_token_expired",
        "refresh_token_reused",
        "refresh_token_invalidated",
    ] {
        let refresher = ScriptedRefresher::with(&[Answer::Reject(401, code)]);
        let (account, listener) = start(-10, &refresher);
        let refused = account.send(GrantLease).await.unwrap().unwrap_err();
        assert!(
            matches!(&refused, Refusal::RefreshFailed(r) if r.contains(code)),
            "{refused:?}"
        );
        let status = account.send(GetAccountStatus).await.unwrap();
        assert_eq!(status.state.name(), "reauth_required");
        assert!(status
            .state
            .auth
            .reason()
            .unwrap()
            .contains("log the account in again"));
        assert_eq!(refresher.reauth.lock().unwrap().len(), 1);
        assert_eq!(
            listener.send(Heard).await.unwrap(),
            Some(false),
            "the router was told"
        );
        // Out of rotation: no further refresh is attempted for a dead login.
        let refused = account.send(GrantLease).await.unwrap().unwrap_err();
        assert_eq!(refused, Refusal::Unusable("reauth_required"));
        assert_eq!(refresher.calls(), 1);
    }
}

#[actix_rt::test]
async fn transient_failures_are_retried_with_backoff_while_the_token_serves() {
    let refresher = ScriptedRefresher::with(&[Answer::Fail, Answer::Reject(503, "busy")]);
    let (account, _) = start(60, &refresher);
    assert_eq!(
        account
            .send(GrantLease)
            .await
            .unwrap()
            .unwrap()
            .token_version,
        1
    );
    eventually(|| refresher.calls() == 3).await;
    for _ in 0..100 {
        let lease = account.send(GrantLease).await.unwrap().unwrap();
        if lease.token_version == 2 {
            assert_eq!(refresher.failures.lock().unwrap().len(), 2);
            assert_eq!(
                account.send(GetAccountStatus).await.unwrap().state.name(),
                "active"
            );
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the retried refresh never served");
}

#[actix_rt::test]
async fn many_401s_on_one_token_cause_one_refresh_and_a_second_401_needs_a_human() {
    let refresher = ScriptedRefresher::with(&[]);
    let (account, _) = start(3600, &refresher);
    let mut leases = Vec::new();
    for _ in 0..10 {
        leases.push(account.send(GrantLease).await.unwrap().unwrap());
    }
    let stale = account.send(GrantLease).await.unwrap().unwrap();
    let renewals = leases.into_iter().map(|l| l.renew_after_unauthorized());
    let renewed: Vec<_> = futures_util::future::join_all(renewals).await;
    assert_eq!(refresher.calls(), 1);
    let renewed: Vec<_> = renewed.into_iter().map(|r| r.unwrap()).collect();
    assert!(renewed.iter().all(|l| l.token_version == 2));
    // A 401 answered for the replaced token says nothing about the new one.
    stale.report(Outcome::Completed { status: 401 });
    assert_eq!(
        account.send(GetAccountStatus).await.unwrap().state.name(),
        "active"
    );
    let mut renewed = renewed.into_iter();
    renewed
        .next()
        .unwrap()
        .report(Outcome::Completed { status: 401 });
    let status = account.send(GetAccountStatus).await.unwrap();
    assert_eq!(status.state.name(), "reauth_required");
    drop(renewed);
    assert_eq!(account.send(GetAccountStatus).await.unwrap().in_flight, 0);
}

#[actix_rt::test]
async fn refresh_now_reports_its_result_and_an_older_store_read_does_not_roll_back() {
    let refresher = ScriptedRefresher::with(&[Answer::Fail]);
    let (account, _) = start(3600, &refresher);
    let failed = account.send(RefreshNow).await.unwrap();
    assert!(
        matches!(failed, Err(Refusal::RefreshFailed(_))),
        "{failed:?}"
    );
    account.send(RefreshNow).await.unwrap().unwrap();
    assert_eq!(refresher.calls(), 2);
    // The router read the row before the refresh was stored: the older tokens are ignored.
    account
        .send(ReplaceCredentials(credentials("a", true, 1)))
        .await
        .unwrap();
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(lease.token_version, 2);
}

/// Grants leases until one carries `version`.
async fn served_version(account: &Addr<AccountActor>, version: i64) {
    for _ in 0..200 {
        let lease = account.send(GrantLease).await.unwrap().unwrap();
        if lease.token_version == version {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("token version {version} was never served");
}

#[actix_rt::test]
async fn a_skew_longer_than_the_token_lifetime_does_not_refresh_on_every_request() {
    // Refreshed tokens live an hour; a two-hour skew finds every one of them due.
    let eager_skew = RefreshPolicy {
        skew_secs: 7200,
        ..policy()
    };
    let refresher = ScriptedRefresher::with(&[]);
    let (account, _) = start_with(3600, &refresher, eager_skew.clone());
    served_version(&account, 2).await;
    for _ in 0..20 {
        account.send(GrantLease).await.unwrap().unwrap();
    }
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(refresher.calls(), 1, "within the minimum interval");

    // With the bound off, the next request starts the next refresh.
    let refresher = ScriptedRefresher::with(&[]);
    let unbounded = RefreshPolicy {
        min_interval: Duration::ZERO,
        ..eager_skew
    };
    let (account, _) = start_with(3600, &refresher, unbounded);
    served_version(&account, 2).await;
    served_version(&account, 3).await;
    assert!(refresher.calls() >= 2);
}

#[actix_rt::test]
async fn an_expired_token_refreshes_within_the_minimum_interval() {
    let refresher = ScriptedRefresher::with(&[]);
    let (account, _) = start(60, &refresher);
    account.send(RefreshNow).await.unwrap().unwrap();
    // The store hands the actor a token that has already expired (a clock jump, a short-lived
    // issuer): requests must not be held off by the minimum interval.
    let mut expired = credentials("a", true, 3);
    expired.expires_at = Some(unix_now() - 1);
    account.send(ReplaceCredentials(expired)).await.unwrap();
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(lease.token_version, 4);
    assert_eq!(refresher.calls(), 2);
}
