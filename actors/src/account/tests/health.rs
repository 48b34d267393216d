//! The account actor with health: cooldowns, the half-open call, health probes, the in-flight
//! cap, saving.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures_util::future::{BoxFuture, LocalBoxFuture};

use super::super::lease::Refusal;
use super::super::messages::*;
use super::super::AccountActor;
use super::{credentials, Listener};
use crate::account::call::{Outcome, UpstreamFacts};
use crate::config::PoolConfig;
use crate::ports::{HealthProber, PoolStateSink, ProbeResult, ProbeTarget, SourceError};
use crate::state::health::{Breaker, CoolingReason, Health, HealthPolicy};
use crate::types::{AccountId, PoolRecord, RoutingParams};

/// Pool records saved, in order.
#[derive(Default, Clone)]
pub(crate) struct Saved(pub(crate) Arc<Mutex<Vec<PoolRecord>>>);

impl PoolStateSink for Saved {
    fn save(
        &self,
        _: AccountId,
        record: PoolRecord,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        self.0.lock().unwrap().push(record);
        Box::pin(async { Ok(()) })
    }
}

fn start(config: PoolConfig, routing: RoutingParams, pool: PoolRecord) -> Addr<AccountActor> {
    let listener = Listener::default().start();
    let mut creds = credentials("a", true, 1);
    creds.routing = routing;
    creds.pool = pool;
    AccountActor::with_config(creds, listener.recipient(), Arc::new(config)).start()
}

#[actix_rt::test]
async fn a_usage_limit_cools_the_account_and_is_saved() {
    let saved = Saved::default();
    let config = PoolConfig {
        sink: Some(Arc::new(saved.clone())),
        ..PoolConfig::default()
    };
    let account = start(config, RoutingParams::default(), PoolRecord::default());
    let mut lease = account.send(GrantLease).await.unwrap().unwrap();
    let reset = SystemTime::now() + Duration::from_secs(600);
    lease.observe(UpstreamFacts {
        error_code: Some("usage_limit_reached".into()),
        resets_at: Some(reset),
        ..UpstreamFacts::default()
    });
    lease.finish(Outcome::Completed { status: 429 }).await;
    let refused = account.send(GrantLease).await.unwrap().unwrap_err();
    assert_eq!(refused, Refusal::Unusable("cooling"));
    let view = account.send(GetAccountStatus).await.unwrap();
    let cooling = view.state.health.cooling.unwrap();
    assert_eq!(cooling.reason, CoolingReason::UsageLimit);
    assert_eq!(cooling.until, reset);
    let last = *saved.0.lock().unwrap().last().unwrap();
    assert_eq!(last.health, view.state.health);
}

#[actix_rt::test]
async fn a_half_open_breaker_lets_one_call_through_and_its_success_closes_it() {
    let pool = PoolRecord {
        health: Health {
            breaker: Breaker::Open {
                until: SystemTime::now() - Duration::from_secs(1),
            },
            openings: 1,
            ..Health::default()
        },
        quota: None,
    };
    let account = start(PoolConfig::default(), RoutingParams::default(), pool);
    let probe = account.send(GrantLease).await.unwrap().unwrap();
    let second = account.send(GrantLease).await.unwrap().unwrap_err();
    assert_eq!(second, Refusal::Unusable("circuit_half_open"));
    probe.finish(Outcome::Completed { status: 200 }).await;
    let view = account.send(GetAccountStatus).await.unwrap();
    assert_eq!(view.state.health, Health::default());
    assert!(account.send(GrantLease).await.unwrap().is_ok());
}

#[actix_rt::test]
async fn consecutive_failures_open_the_breaker() {
    let config = PoolConfig {
        health: HealthPolicy {
            failure_threshold: 2,
            ..HealthPolicy::default()
        },
        ..PoolConfig::default()
    };
    let account = start(config, RoutingParams::default(), PoolRecord::default());
    for outcome in [Outcome::TransportFailed, Outcome::Completed { status: 502 }] {
        let lease = account.send(GrantLease).await.unwrap().unwrap();
        lease.finish(outcome).await;
    }
    let refused = account.send(GrantLease).await.unwrap().unwrap_err();
    assert_eq!(refused, Refusal::Unusable("circuit_open"));
}

#[actix_rt::test]
async fn the_in_flight_cap_refuses_beyond_its_maximum() {
    let routing = RoutingParams {
        max_in_flight: Some(1),
        ..RoutingParams::default()
    };
    let account = start(PoolConfig::default(), routing, PoolRecord::default());
    let held = account.send(GrantLease).await.unwrap().unwrap();
    assert_eq!(
        account.send(GrantLease).await.unwrap().unwrap_err(),
        Refusal::Full
    );
    held.finish(Outcome::ClientGone).await;
    assert!(account.send(GrantLease).await.unwrap().is_ok());
}

#[actix_rt::test]
async fn a_stored_change_with_the_same_login_keeps_the_verdict_and_health() {
    let account = start(
        PoolConfig::default(),
        RoutingParams::default(),
        PoolRecord::default(),
    );
    let mut lease = account.send(GrantLease).await.unwrap().unwrap();
    lease.observe(UpstreamFacts {
        retry_after: Some(Duration::from_secs(60)),
        ..UpstreamFacts::default()
    });
    lease.finish(Outcome::Completed { status: 429 }).await;
    let lease = account.send(GrantLease).await;
    assert!(lease.unwrap().is_err(), "cooling");
    let mut same = credentials("a", true, 1);
    same.version = 7;
    same.routing.priority = 3;
    account.send(ReplaceCredentials(same)).await.unwrap();
    let view = account.send(GetAccountStatus).await.unwrap();
    assert_eq!(view.routing.priority, 3);
    assert!(view.state.health.cooling.is_some(), "health survives");
}

/// Answers every probe with a fixed result and counts them.
#[derive(Clone)]
struct FixedProbe(ProbeResult, Arc<Mutex<usize>>);

impl HealthProber for FixedProbe {
    fn probe(&self, _: ProbeTarget) -> LocalBoxFuture<'static, ProbeResult> {
        *self.1.lock().unwrap() += 1;
        let result = self.0;
        Box::pin(async move { result })
    }
}

async fn probed(result: ProbeResult) -> (AccountView, usize) {
    let probe = FixedProbe(result, Arc::default());
    let config = PoolConfig {
        prober: Some(Arc::new(probe.clone())),
        ..PoolConfig::default()
    };
    let half_open = PoolRecord {
        health: Health {
            breaker: Breaker::Open {
                until: SystemTime::now() - Duration::from_secs(1),
            },
            openings: 1,
            ..Health::default()
        },
        quota: None,
    };
    let account = start(config, RoutingParams::default(), half_open);
    account.send(ProbeNow).await.unwrap();
    // The probe runs on the actor; its result is in once the actor answers again without it.
    let mut view = account.send(GetAccountStatus).await.unwrap();
    for _ in 0..100 {
        if !view.probing {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        view = account.send(GetAccountStatus).await.unwrap();
    }
    account.send(ProbeNow).await.unwrap();
    let count = *probe.1.lock().unwrap();
    (view, count)
}

#[actix_rt::test]
async fn a_successful_probe_closes_a_half_open_breaker() {
    let (view, probes) = probed(ProbeResult::Status(200)).await;
    assert_eq!(view.state.health, Health::default());
    assert_eq!(probes, 1, "a healthy account is not probed again");
    let moves = view.counts.breaker.by_target();
    assert_eq!(moves, [("open", 0), ("half_open", 1), ("closed", 1)]);
}

#[actix_rt::test]
async fn a_failed_probe_reopens_the_breaker_for_longer() {
    let (view, probes) = probed(ProbeResult::TransportFailed).await;
    let moves = view.counts.breaker.by_target();
    assert_eq!(moves, [("open", 1), ("half_open", 1), ("closed", 0)]);
    let health = view.state.health;
    let Breaker::Open { until } = health.breaker else {
        panic!("{health:?}");
    };
    assert!(
        until > SystemTime::now() + Duration::from_secs(5),
        "backoff grew"
    );
    assert_eq!(health.openings, 2);
    assert_eq!(probes, 1, "an open breaker waits for its backoff");
}

/// Every answer carries quota headers: only a quota that says something new is written.
#[actix_rt::test]
async fn a_quota_is_saved_only_when_it_says_something_new() {
    use crate::state::quota::{QuotaSnapshot, QuotaWindow};
    let saved = Saved::default();
    let config = PoolConfig {
        sink: Some(Arc::new(saved.clone())),
        ..PoolConfig::default()
    };
    let account = start(config, RoutingParams::default(), PoolRecord::default());
    let reset = SystemTime::now() + Duration::from_secs(3600);
    let quota = |used: f64| QuotaSnapshot {
        primary: Some(QuotaWindow {
            used_percent: used,
            window_minutes: Some(300),
            resets_at: Some(reset),
        }),
        secondary: None,
        observed_at: SystemTime::now(),
    };
    for used in [10.0, 10.0, 10.0, 11.0, 11.0] {
        let mut lease = account.send(GrantLease).await.unwrap().unwrap();
        lease.observe(UpstreamFacts {
            rate_limits: Some(quota(used)),
            ..UpstreamFacts::default()
        });
        lease.finish(Outcome::Completed { status: 200 }).await;
    }
    let saved = saved.0.lock().unwrap();
    let used: Vec<f64> = saved
        .iter()
        .map(|r| r.quota.unwrap().primary.unwrap().used_percent)
        .collect();
    assert_eq!(used, [10.0, 11.0]);
}
