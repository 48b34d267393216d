//! A rotated token set the store refused: served at once, written again until it lands, its
//! refresh token presented by the next refresh, never a refresh beside a write, dropped with a
//! dead login, and written once more (or reported lost) when the account stops.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;

use super::super::lease::Refusal;
use super::super::messages::*;
use super::scripted::{eventually, policy, start, start_with, token, Answer, ScriptedRefresher};
use crate::state::refresh::RefreshPolicy;

async fn tokens_unsaved(account: &Addr<crate::AccountActor>) -> bool {
    account.send(GetAccountStatus).await.unwrap().tokens_unsaved
}

#[actix_rt::test]
async fn a_rotation_the_store_refuses_serves_at_once_and_is_written_until_it_lands() {
    let refresher = ScriptedRefresher::with_writes(&[Answer::Unsaved], &[false, false]);
    let (account, _) = start(-10, &refresher);
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(
        (lease.token_version, token(&lease)),
        (2, "token-rot-1".to_owned()),
        "the held set serves, under the version it will be stored as"
    );
    assert!(tokens_unsaved(&account).await);
    let mut unsaved = true;
    for _ in 0..200 {
        unsaved = tokens_unsaved(&account).await;
        if !unsaved {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!unsaved, "the held set was never stored");
    assert_eq!(
        refresher.saves(),
        3,
        "two failed writes, then one that landed"
    );
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(
        (lease.token_version, token(&lease)),
        (2, "token-rot-1".to_owned())
    );
    assert_eq!(refresher.calls(), 1);
    assert!(refresher.reauth.lock().unwrap().is_empty());
    assert!(!refresher.overlapped());
}

#[actix_rt::test]
async fn the_next_refresh_presents_the_held_refresh_token_and_never_runs_beside_a_write() {
    let writes = [false; 40];
    let refresher = ScriptedRefresher::with_writes(&[Answer::Unsaved, Answer::Unsaved], &writes);
    let (account, _) = start(3600, &refresher);
    account.send(RefreshNow).await.unwrap().unwrap();
    // Writes of the held set now fail one after the other; refreshes asked for meanwhile wait
    // for the running write.
    eventually(|| refresher.saves() >= 2).await;
    account.send(RefreshNow).await.unwrap().unwrap();
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(
        (lease.token_version, token(&lease)),
        (2, "token-rot-2".to_owned())
    );
    account.send(RefreshNow).await.unwrap().unwrap();
    let presented = refresher.presented.lock().unwrap().clone();
    assert_eq!(
        presented,
        [None, Some("rt-1".to_owned()), Some("rt-2".to_owned())],
        "each refresh presents the newest refresh token, never the stored one"
    );
    // The third refresh stored its answer: nothing is held any more.
    assert!(!tokens_unsaved(&account).await);
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(lease.token_version, 2);
    assert!(!refresher.overlapped(), "a refresh ran beside a write");
}

#[actix_rt::test]
async fn a_dead_login_drops_the_held_set_and_is_recorded_on_the_stored_version() {
    let answers = [
        Answer::Unsaved,
        Answer::Reject(401, "refresh_token_invalidated"),
    ];
    let refresher = ScriptedRefresher::with_writes(&answers, &[false; 40]);
    let (account, _) = start(3600, &refresher);
    account.send(RefreshNow).await.unwrap().unwrap();
    let refused = account.send(RefreshNow).await.unwrap();
    assert!(
        matches!(refused, Err(Refusal::RefreshFailed(_))),
        "{refused:?}"
    );
    let status = account.send(GetAccountStatus).await.unwrap();
    assert_eq!(status.state.name(), "reauth_required");
    assert!(!status.tokens_unsaved);
    let reauth = refresher.reauth.lock().unwrap().clone();
    assert_eq!(reauth.len(), 1);
    assert_eq!(reauth[0].0, 1, "the version the store holds");
}

#[actix_rt::test]
async fn a_stopping_account_writes_its_held_set_once_more_and_reports_it_lost_if_it_fails() {
    // No background write before the stop: the first pause is long.
    let patient = RefreshPolicy {
        retry_initial: Duration::from_secs(30),
        retry_max: Duration::from_secs(30),
        ..policy()
    };
    for (lands, lost) in [(true, 0), (false, 1)] {
        let refresher = ScriptedRefresher::with_writes(&[Answer::Unsaved], &[lands]);
        let (account, _) = start_with(3600, &refresher, patient.clone());
        account.send(RefreshNow).await.unwrap().unwrap();
        assert_eq!(refresher.saves(), 0);
        account.send(Retire).await.unwrap();
        assert_eq!(refresher.saves(), 1, "one last write");
        assert_eq!(refresher.lost_at_stop.load(Ordering::SeqCst), lost);
        assert!(!account.connected(), "stopped once answered");
    }
}

#[actix_rt::test]
async fn a_stopping_account_lets_a_running_refresh_end_first() {
    let refresher = ScriptedRefresher::with(&[Answer::Unsaved]);
    let (account, _) = start(3600, &refresher);
    let refresh = account.send(RefreshNow);
    let retire = account.send(Retire);
    let (refreshed, retired) = futures_util::future::join(refresh, retire).await;
    refreshed.unwrap().unwrap();
    retired.unwrap();
    assert_eq!(refresher.saves(), 1, "the set the refresh left was written");
    assert_eq!(refresher.lost_at_stop.load(Ordering::SeqCst), 0);
}
