//! What the account's view counts for operators: its breaker's moves (through calls and health
//! probes) and its refreshes by result.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::super::messages::*;
use super::super::AccountActor;
use super::scripted::{start, Answer, ScriptedRefresher};
use super::{credentials, Listener};
use crate::account::call::Outcome;
use crate::account::counts::{BreakerCounts, RefreshCounts};
use crate::config::PoolConfig;
use crate::state::health::HealthPolicy;

/// An account whose breaker opens at the second failure, for 20 ms, then 40 ms.
fn fragile() -> Addr<AccountActor> {
    let config = PoolConfig {
        health: HealthPolicy {
            failure_threshold: 2,
            breaker_backoff_initial: Duration::from_millis(20),
            breaker_backoff_max: Duration::from_millis(40),
            ..HealthPolicy::default()
        },
        ..PoolConfig::default()
    };
    let listener = Listener::default().start();
    AccountActor::with_config(
        credentials("a", true, 1),
        listener.recipient(),
        Arc::new(config),
    )
    .start()
}

async fn breaker(account: &Addr<AccountActor>) -> BreakerCounts {
    account.send(GetAccountStatus).await.unwrap().counts.breaker
}

/// Waits out the breaker's backoff and takes its trial call.
async fn trial(account: &Addr<AccountActor>) -> crate::Lease {
    for _ in 0..100 {
        if let Ok(lease) = account.send(GrantLease).await.unwrap() {
            return lease;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the breaker never let a trial through");
}

#[actix_rt::test]
async fn the_view_counts_where_the_breaker_went_once_per_move() {
    let account = fragile();
    for _ in 0..2 {
        let lease = account.send(GrantLease).await.unwrap().unwrap();
        lease.finish(Outcome::TransportFailed).await;
    }
    let counts = breaker(&account).await;
    assert_eq!(
        counts.by_target(),
        [("open", 1), ("half_open", 0), ("closed", 0)]
    );

    // The trial fails: the breaker opens again.
    trial(&account).await.finish(Outcome::TimedOut).await;
    let counts = breaker(&account).await;
    assert_eq!(
        counts.by_target(),
        [("open", 2), ("half_open", 1), ("closed", 0)]
    );

    // A trial whose client left says nothing; the next trial of the same opening is not a move.
    trial(&account).await.finish(Outcome::ClientGone).await;
    let lease = trial(&account).await;
    assert_eq!(breaker(&account).await.half_opened, 2);
    lease.finish(Outcome::Completed { status: 200 }).await;
    let counts = breaker(&account).await;
    assert_eq!(
        counts.by_target(),
        [("open", 2), ("half_open", 2), ("closed", 1)]
    );

    // Calls on a closed breaker move nothing.
    let lease = account.send(GrantLease).await.unwrap().unwrap();
    lease.finish(Outcome::Completed { status: 200 }).await;
    assert_eq!(breaker(&account).await, counts);
}

async fn refreshes(account: &Addr<AccountActor>) -> RefreshCounts {
    account
        .send(GetAccountStatus)
        .await
        .unwrap()
        .counts
        .refreshes
}

#[actix_rt::test]
async fn the_view_counts_refreshes_by_result() {
    let answers = [
        Answer::Fail,
        Answer::Reject(503, "busy"),
        Answer::Unsaved,
        Answer::Ok,
        Answer::Reject(401, "refresh_token_expired"),
    ];
    let refresher = ScriptedRefresher::with(&answers);
    let (account, _) = start(3600, &refresher);
    assert_eq!(refreshes(&account).await, RefreshCounts::default());
    for _ in 0..5 {
        let _ = account.send(RefreshNow).await.unwrap();
    }
    assert_eq!(refresher.calls(), 5);
    assert_eq!(
        refreshes(&account).await.by_result(),
        [("ok", 1), ("failed", 2), ("rejected", 1), ("unsaved", 1)]
    );
}
