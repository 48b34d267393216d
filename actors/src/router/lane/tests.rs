//! The lane against a running router and real account actors: what it grants on the caller's
//! thread, what it leaves to the actors, and that both ways share one slot count and one
//! affinity table.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::account::call::{Outcome, UpstreamFacts};
use crate::account::lease::Placement;
use crate::account::tests::credentials;
use crate::account::tests::health::Saved;
use crate::config::PoolConfig;
use crate::config::Strategy;
use crate::router::messages::{AcquireError, GetAccountStatuses};
use crate::router::tests::{acquire, pinned, synced, with_key, MemorySource};
use crate::router::{Leases, RouterActor};
use crate::state::quota::{QuotaSnapshot, QuotaWindow};
use crate::types::{AccountCredentials, AccountId};

async fn pool(accounts: Vec<AccountCredentials>, config: PoolConfig) -> Leases {
    let source = MemorySource::default();
    let count = accounts.len();
    for account in accounts {
        source.put(account);
    }
    let leases =
        RouterActor::with_config(Arc::new(source), Duration::from_secs(60), config).start_leasing();
    synced(leases.router(), count).await;
    leases
}

/// Calls in flight on the pool's first account, as its gate counts them.
fn in_flight(leases: &Leases) -> usize {
    leases.lane.members()[0].gate.in_flight()
}

/// Waits until every account has handled what was sent to it before.
async fn settled(leases: &Leases) -> Vec<crate::AccountView> {
    leases.router().send(GetAccountStatuses).await.unwrap()
}

fn capped(id: &str, max: u32) -> AccountCredentials {
    let mut account = credentials(id, true, 1);
    account.routing.max_in_flight = Some(max);
    account
}

#[actix_rt::test]
async fn a_plain_account_is_leased_here_and_a_success_frees_its_slot_without_the_actor() {
    let leases = pool(vec![capped("a", 1)], PoolConfig::default()).await;
    let lease = leases
        .lane
        .try_grant(&acquire())
        .expect("granted on this thread");
    assert_eq!(lease.credentials.chatgpt_account_id, "chatgpt-a");
    assert_eq!(in_flight(&leases), 1);
    // One slot count for both ways: the router finds the account full.
    let refused = leases.router().send(acquire()).await.unwrap();
    assert_eq!(refused.unwrap_err(), AcquireError::Busy);
    assert!(leases.lane.try_grant(&acquire()).is_none());

    lease.report(Outcome::Completed { status: 200 });
    // Freed at once, on this thread: no message had to be handled.
    assert_eq!(in_flight(&leases), 0);
    let status = &settled(&leases).await[0];
    assert_eq!(status.in_flight, 0);
    assert_eq!(status.last_error, None);
    let again = leases.acquire(acquire()).await.unwrap();
    assert_eq!(in_flight(&leases), 1);
    drop(again); // a dropped lease ends as `Abandoned`: plain too
    assert_eq!(in_flight(&leases), 0);
}

#[actix_rt::test]
async fn a_failure_goes_to_the_account_and_only_the_actor_leases_until_a_success() {
    let leases = pool(vec![credentials("a", true, 1)], PoolConfig::default()).await;
    let lease = leases.lane.try_grant(&acquire()).unwrap();
    lease.report(Outcome::Completed { status: 502 });
    assert_eq!(
        in_flight(&leases),
        1,
        "a failure is the account's to handle"
    );
    let status = &settled(&leases).await[0];
    assert_eq!(status.in_flight, 0);
    assert!(
        status.last_error.is_some(),
        "the account heard of the failure"
    );
    // One failure counted: the next outcome matters, so the actor grants.
    assert!(leases.lane.try_grant(&acquire()).is_none());
    let lease = leases
        .acquire(acquire())
        .await
        .expect("the breaker is still closed");
    lease.report(Outcome::Completed { status: 200 });
    settled(&leases).await;
    assert!(leases.lane.try_grant(&acquire()).is_some(), "clean again");
}

#[actix_rt::test]
async fn a_token_due_for_refresh_is_leased_by_the_actor_not_on_the_callers_thread() {
    let mut due = credentials("a", true, 1);
    due.expires_at = Some(crate::account::unix_now() + 10);
    let leases = pool(vec![due], PoolConfig::default()).await;
    assert!(leases.lane.try_grant(&acquire()).is_none());
    let lease = leases.acquire(acquire()).await;
    assert!(lease.is_ok(), "the current token still serves meanwhile");
}

#[actix_rt::test]
async fn conversations_share_one_table_whichever_way_they_are_leased() {
    let accounts = vec![credentials("a", true, 1), credentials("b", true, 1)];
    let leases = pool(accounts, PoolConfig::default()).await;
    let first = leases.lane.try_grant(&with_key("conv", &[])).unwrap();
    assert_eq!(first.placement, Placement::New);
    let home = first.account_id.clone();
    let kept = leases.lane.try_grant(&with_key("conv", &[])).unwrap();
    assert_eq!(
        (&kept.account_id, &kept.placement),
        (&home, &Placement::Kept)
    );
    let by_router = leases
        .router()
        .send(with_key("conv", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_router.account_id, home);
    assert_eq!(by_router.placement, Placement::Kept);
    // Leases on one token share its credentials, whichever way they were granted.
    assert!(Arc::ptr_eq(&first.credentials, &kept.credentials));
    assert!(Arc::ptr_eq(&first.credentials, &by_router.credentials));
    let detour = leases
        .lane
        .try_grant(&with_key("conv", &[home.as_str()]))
        .unwrap();
    assert_eq!(detour.placement, Placement::Detour { bound: home });
}

#[actix_rt::test]
async fn a_pinned_turn_goes_to_its_account_ahead_of_the_binding_and_the_binding_follows() {
    let accounts = vec![credentials("a", true, 1), credentials("b", true, 1)];
    let leases = pool(accounts, PoolConfig::default()).await;
    let home = leases.lane.try_grant(&with_key("conv", &[])).unwrap();
    let other = if home.account_id.as_str() == "a" {
        "b"
    } else {
        "a"
    };
    drop(home);
    // A WebSocket turn continuing a response the other account's connection made: the binding
    // must not send it home, here or through the router.
    let here = leases.lane.try_grant(&pinned("conv", other)).unwrap();
    assert_eq!(here.account_id.as_str(), other);
    assert_eq!(here.placement, Placement::Kept);
    drop(here);
    let by_router = leases
        .router()
        .send(pinned("conv", other))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_router.account_id.as_str(), other);
    drop(by_router);
    // The conversation now lives where its pinned turns went.
    let after = leases.lane.try_grant(&with_key("conv", &[])).unwrap();
    assert_eq!(after.account_id.as_str(), other);
}

#[actix_rt::test]
async fn a_new_quota_goes_to_the_account_and_a_known_one_settles_here() {
    let saved = Saved::default();
    let config = PoolConfig {
        sink: Some(Arc::new(saved.clone())),
        ..PoolConfig::default()
    };
    let leases = pool(vec![credentials("a", true, 1)], config).await;
    let quota = |used_percent| UpstreamFacts {
        rate_limits: Some(QuotaSnapshot {
            primary: Some(QuotaWindow {
                used_percent,
                window_minutes: Some(300),
                resets_at: None,
            }),
            secondary: None,
            observed_at: SystemTime::now(),
        }),
        ..UpstreamFacts::default()
    };
    // (used %, settled here, saves so far): this test runs on one thread, so a report sent to
    // the account still holds its slot until the account is polled.
    for (used, here, saves) in [(10.0, false, 1), (10.0, true, 1), (11.0, false, 2)] {
        let mut lease = leases.lane.try_grant(&acquire()).unwrap();
        lease.observe(quota(used));
        lease.report(Outcome::Completed { status: 200 });
        assert_eq!(in_flight(&leases) == 0, here, "after {used}%");
        let status = &settled(&leases).await[0];
        assert_eq!(saved.0.lock().unwrap().len(), saves, "after {used}%");
        let primary = status.quota.and_then(|q| q.primary).unwrap();
        assert_eq!(primary.used_percent, used);
    }
}

#[actix_rt::test]
async fn the_member_leased_here_is_the_first_the_router_would_order() {
    let account = |id: &str, plan: Option<&str>, priority: i32, weight: u32| {
        let mut account = credentials(id, true, 1);
        account.plan = plan.map(str::to_owned);
        account.routing.priority = priority;
        account.routing.weight = weight;
        account.routing.max_in_flight = Some(1);
        account
    };
    let accounts = || {
        vec![
            account("a", Some("plus"), 1, 1),
            account("b", Some("pro"), 1, 3),
            account("c", None, 0, 2),
            account("d", Some("plus"), 0, 1),
            account("e", Some("pro"), 2, 1),
        ]
    };
    for strategy in [
        Strategy::Headroom,
        Strategy::RoundRobin,
        Strategy::FillFirst,
    ] {
        let config = PoolConfig {
            strategy,
            ..PoolConfig::default()
        };
        let leases = pool(accounts(), config).await;
        // A full member too: "e" holds its one slot.
        let _held = leases.lane.try_grant(&acquire()).expect("e is free");
        let members = leases.lane.members();
        let now = SystemTime::now();
        for bound in [
            None,
            Some("a"),
            Some("b"),
            Some("c"),
            Some("e"),
            Some("gone"),
        ] {
            let bound = bound.map(AccountId::from);
            for (exclude, plans) in [
                (vec![], vec![]),
                (vec!["b"], vec![]),
                (vec!["a"], vec!["pro"]),
            ] {
                let mut request = acquire();
                request.exclude = exclude.into_iter().map(AccountId::from).collect();
                request.exclude_plans = plans.into_iter().map(str::to_owned).collect();
                for cursor in 0..8 {
                    let lane = &leases.lane;
                    let ordered = lane.order(&members, bound.as_ref(), &request, cursor, now);
                    let first = ordered.first().map(|m| m.view.id.clone());
                    let best = lane.best(&members, bound.as_ref(), &request, cursor, now);
                    assert_eq!(
                        best.map(|m| m.view.id.clone()),
                        first,
                        "{strategy:?}, bound {bound:?}, {request:?}, cursor {cursor}"
                    );
                }
            }
        }
    }
}
