//! The governor's admission without a server: concurrency per key and tenant, the global cap,
//! quotas, and the release of every slot when an admission ends.

use std::sync::Arc;

use chrono::Utc;

use super::quota::QuotaBook;
use super::{Governor, Rejection};
use crate::domain::Scope;
use crate::domain::Usage;
use crate::domain::{KeyPolicy, Limits, TenantPolicy};
use crate::settings::LimitSettings;

fn governor(
    max_in_flight: usize,
) -> (
    Governor,
    tokio::sync::mpsc::UnboundedReceiver<super::UsageRecord>,
) {
    let settings = LimitSettings {
        default_key_rpm: 0,
        max_in_flight,
        auth_failures_per_minute: 0,
        auth_failures_tracked_addresses: 1,
    };
    Governor::new(settings, QuotaBook::new(Utc::now(), Vec::new()))
}

fn key(id: &str, limits: Limits, tenant: Option<&Arc<TenantPolicy>>) -> Arc<KeyPolicy> {
    let mut key = KeyPolicy::unrestricted(id);
    key.limits = limits;
    key.tenant = tenant.cloned();
    Arc::new(key)
}

fn tenant(limits: Limits) -> Arc<TenantPolicy> {
    Arc::new(TenantPolicy {
        id: "t".into(),
        name: "team".into(),
        limits,
        hidden_models: Vec::new(),
    })
}

#[test]
fn concurrency_is_counted_per_key_and_per_tenant_and_released_on_drop() {
    let (governor, _usage) = governor(100);
    let team = tenant(Limits {
        max_concurrent: Some(2),
        ..Limits::default()
    });
    let single = Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    };
    let a = key("a", single.clone(), Some(&team));
    let b = key("b", Limits::default(), Some(&team));
    let now = Utc::now();
    let first = governor.admit(&a, now).unwrap();
    let refused = governor.admit(&a, now).unwrap_err();
    assert_eq!(
        refused,
        Rejection::Concurrency {
            scope: Scope::Key,
            limit: 1
        }
    );
    let second = governor.admit(&b, now).unwrap();
    let refused = governor.admit(&b, now).unwrap_err();
    assert_eq!(
        refused,
        Rejection::Concurrency {
            scope: Scope::Tenant,
            limit: 2
        }
    );
    assert_eq!(governor.in_flight(), 2, "refused admissions hold nothing");
    drop(first);
    drop(second);
    assert_eq!(governor.in_flight(), 0);
    assert!(governor.admit(&a, now).is_ok());
}

#[test]
fn the_global_cap_sheds_load_until_a_call_ends() {
    let (governor, _usage) = governor(1);
    let k = key("k", Limits::default(), None);
    let now = Utc::now();
    let held = governor.admit(&k, now).unwrap();
    assert_eq!(governor.admit(&k, now).unwrap_err(), Rejection::Overloaded);
    drop(held);
    assert!(governor.admit(&k, now).is_ok());
}

#[test]
fn recorded_usage_spends_the_quota_and_goes_to_the_store_writer() {
    let (governor, mut usage) = governor(10);
    let team = tenant(Limits::default());
    let k = key(
        "k",
        Limits {
            daily_tokens: Some(10),
            ..Limits::default()
        },
        Some(&team),
    );
    let admission = governor.admit(&k, Utc::now()).unwrap();
    let status = governor.token_status(&k, Utc::now()).unwrap();
    assert_eq!((status.limit, status.remaining), (10, 10));
    admission.record_usage(Usage {
        input_tokens: 4,
        output_tokens: 8,
        total_tokens: 12,
        ..Usage::default()
    });
    drop(admission);
    let refused = governor.admit(&k, Utc::now()).unwrap_err();
    assert!(matches!(
        refused,
        Rejection::Quota {
            scope: Scope::Key,
            ..
        }
    ));
    assert_eq!(governor.token_status(&k, Utc::now()).unwrap().remaining, 0);
    let record = usage.try_recv().unwrap();
    assert_eq!(record.usage.total_tokens, 12);
    let scopes: Vec<Scope> = record.subjects.iter().map(|s| s.0).collect();
    assert_eq!(scopes, [Scope::Key, Scope::Tenant]);
}

#[test]
fn a_key_rate_and_its_tenant_rate_both_apply() {
    let (governor, _usage) = governor(10);
    let team = tenant(Limits {
        rpm: Some(1),
        ..Limits::default()
    });
    let roomy = Limits {
        rpm: Some(100),
        ..Limits::default()
    };
    let a = key("a", roomy.clone(), Some(&team));
    let b = key("b", roomy, Some(&team));
    let status = governor.check_rate(&a).unwrap().unwrap();
    assert_eq!(
        (status.limit, status.remaining),
        (1, 0),
        "the tighter rate is reported"
    );
    let (rejection, status) = governor.check_rate(&b).unwrap_err();
    assert!(matches!(
        rejection,
        Rejection::Rate {
            scope: Scope::Tenant,
            ..
        }
    ));
    assert_eq!(status.remaining, 0);
}

/// Usage still queued when the server stops is written before the process may exit.
#[actix_web::test]
async fn a_flush_waits_until_queued_usage_is_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(
        &dir.path().join("db"),
        2,
        crate::store::MasterKey::generate(),
    )
    .unwrap();
    let settings = LimitSettings {
        default_key_rpm: 0,
        max_in_flight: 10,
        auth_failures_per_minute: 0,
        auth_failures_tracked_addresses: 1,
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let metrics = super::metrics::GovernanceMetrics::default();
    let governor = Governor::load(settings, store.clone(), log, metrics)
        .await
        .unwrap();
    let k = key("k", Limits::default(), None);
    for _ in 0..3 {
        let admission = governor.admit(&k, Utc::now()).unwrap();
        admission.record_usage(Usage {
            input_tokens: 1,
            output_tokens: 1,
            total_tokens: 2,
            ..Usage::default()
        });
    }
    assert!(
        governor
            .flush_usage(std::time::Duration::from_secs(10))
            .await
    );
    let now = Utc::now();
    let totals = store
        .usage_totals(&super::quota::day_key(now), &super::quota::month_key(now))
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].day_tokens, 6, "every queued record is written");
    // Nothing pending: a flush returns at once.
    assert!(governor.flush_usage(std::time::Duration::ZERO).await);
}

#[test]
fn new_limits_apply_to_the_next_admission_and_calls_in_flight_keep_their_slots() {
    let (governor, _usage) = governor(1);
    let a = key("a", Limits::default(), None);
    let now = Utc::now();
    let first = governor.admit(&a, now).unwrap();
    assert_eq!(governor.admit(&a, now).unwrap_err(), Rejection::Overloaded);
    governor.set_limits(LimitSettings {
        default_key_rpm: 1,
        max_in_flight: 2,
        auth_failures_per_minute: 0,
        auth_failures_tracked_addresses: 1,
    });
    let second = governor.admit(&a, now).unwrap();
    assert_eq!(governor.in_flight(), 2);
    drop((first, second));
    assert!(
        governor.check_rate(&a).is_ok(),
        "the new default rate allows one"
    );
    assert!(
        governor.check_rate(&a).is_err(),
        "and no second within the minute"
    );
}
