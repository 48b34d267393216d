use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::messages::*;
use super::RouterActor;
use crate::account::tests::credentials;
use crate::account::AccountActor;
use crate::ports::{AccountSource, SourceError};
use crate::types::{AccountCredentials, AccountId};

/// An in-memory store of accounts that tests edit while the router runs; ids in `broken` fail
/// to load, like a row whose sealed token cannot be opened.
#[derive(Clone, Default)]
pub(crate) struct MemorySource(
    Arc<Mutex<BTreeMap<AccountId, AccountCredentials>>>,
    Arc<Mutex<Vec<AccountId>>>,
);

impl MemorySource {
    pub(crate) fn put(&self, c: AccountCredentials) {
        self.0.lock().unwrap().insert(c.id.clone(), c);
    }
    fn remove(&self, id: &str) {
        self.0.lock().unwrap().remove(&AccountId::from(id));
    }
}

impl AccountSource for MemorySource {
    fn versions(&self) -> BoxFuture<'static, Result<Vec<(AccountId, i64)>, SourceError>> {
        let v = self
            .0
            .lock()
            .unwrap()
            .values()
            .map(|c| (c.id.clone(), c.version))
            .collect();
        Box::pin(async move { Ok(v) })
    }
    fn load(
        &self,
        id: AccountId,
    ) -> BoxFuture<'static, Result<Option<AccountCredentials>, SourceError>> {
        let broken = self.1.lock().unwrap().contains(&id);
        let c = self.0.lock().unwrap().get(&id).cloned();
        Box::pin(async move {
            match broken {
                true => Err(SourceError("cannot open".into())),
                false => Ok(c),
            }
        })
    }
}

/// A message that makes an account actor panic, as a bug would.
#[derive(Message)]
#[rtype(result = "()")]
struct Explode;

impl Handler<Explode> for AccountActor {
    type Result = ();
    fn handle(&mut self, _: Explode, _: &mut Context<Self>) {
        panic!("account actor bug (expected in this test)");
    }
}

pub(crate) fn acquire() -> Acquire {
    Acquire {
        model: "gpt-5.5".to_owned(),
        affinity: None,
        exclude: Vec::new(),
        exclude_plans: Vec::new(),
        written_by: None,
        pinned: None,
    }
}

pub(crate) async fn synced(router: &Addr<RouterActor>, accounts: usize) {
    for _ in 0..200 {
        router.send(SyncNow).await.unwrap();
        let status = router.send(GetPoolStatus).await.unwrap();
        if status.synced && status.accounts == accounts && status.usable == accounts {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("router never reached {accounts} usable accounts");
}

#[actix_rt::test]
async fn an_empty_pool_says_so() {
    let router =
        RouterActor::new(Arc::new(MemorySource::default()), Duration::from_secs(60)).start();
    synced(&router, 0).await;
    assert_eq!(
        router.send(acquire()).await.unwrap().unwrap_err(),
        AcquireError::EmptyPool
    );
}

#[actix_rt::test]
async fn leases_rotate_round_robin_and_skip_excluded_accounts() {
    let source = MemorySource::default();
    source.put(credentials("a", true, 1));
    source.put(credentials("b", true, 1));
    let config = crate::config::PoolConfig {
        strategy: crate::config::Strategy::RoundRobin,
        ..Default::default()
    };
    let router =
        RouterActor::with_config(Arc::new(source), Duration::from_secs(60), config).start();
    synced(&router, 2).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(
            router
                .send(acquire())
                .await
                .unwrap()
                .unwrap()
                .account_id
                .to_string(),
        );
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);
    let mut request = acquire();
    request.exclude = vec![AccountId::from("a"), AccountId::from("b")];
    assert_eq!(
        router.send(request).await.unwrap().unwrap_err(),
        AcquireError::NoUsableAccount
    );
}

#[actix_rt::test]
async fn accounts_added_changed_and_removed_in_the_source_are_followed() {
    let source = MemorySource::default();
    source.put(credentials("a", true, 1));
    let router = RouterActor::new(Arc::new(source.clone()), Duration::from_millis(20)).start();
    synced(&router, 1).await;
    source.put(credentials("b", true, 1));
    synced(&router, 2).await;
    source.remove("a");
    synced(&router, 1).await;
    source.put(credentials("b", true, 2));
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let lease = router.send(acquire()).await.unwrap().unwrap();
    assert_eq!(lease.account_id.as_str(), "b");
    assert!(secrecy::ExposeSecret::expose_secret(&lease.credentials.access_token).ends_with("-2"));
}

#[actix_rt::test]
async fn an_unreadable_account_does_not_hold_back_the_others() {
    let source = MemorySource::default();
    source.put(credentials("a", true, 1));
    source.put(credentials("b", true, 1));
    source.1.lock().unwrap().push(AccountId::from("a"));
    let router = RouterActor::new(Arc::new(source.clone()), Duration::from_millis(20)).start();
    synced(&router, 1).await;
    let lease = router.send(acquire()).await.unwrap().unwrap();
    assert_eq!(lease.account_id.as_str(), "b");
    drop(lease);
    source.1.lock().unwrap().clear();
    synced(&router, 2).await;
}

#[actix_rt::test]
async fn a_panicked_account_actor_is_restarted_from_the_source() {
    let source = MemorySource::default();
    source.put(credentials("a", true, 1));
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 1).await;
    let lease = router.send(acquire()).await.unwrap().unwrap();
    let victim = lease_owner(&router).await;
    drop(lease);
    victim.do_send(Explode);
    // The dead mailbox is noticed on the next acquire or sync; the account serves again.
    let mut restarted = false;
    for _ in 0..200 {
        if let Ok(Ok(lease)) = router.send(acquire()).await {
            assert_eq!(lease.account_id.as_str(), "a");
            restarted = !victim.connected();
            if restarted {
                break;
            }
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(restarted, "the account was not restarted");
}

#[actix_rt::test]
async fn shutdown_stops_the_router_and_its_account_actors() {
    let source = MemorySource::default();
    source.put(credentials("a", true, 1));
    let router = RouterActor::new(Arc::new(source), Duration::from_millis(20)).start();
    synced(&router, 1).await;
    let account = lease_owner(&router).await;
    // Two callers (the binary's own stop and a handle's) both wait for the one stop; the syncs
    // that fall due meanwhile start no account again.
    let (first, second) = futures_util::future::join(router.send(Shutdown), async {
        actix_rt::time::sleep(Duration::from_millis(30)).await;
        router.send(Shutdown).await
    })
    .await;
    first.unwrap();
    assert!(second.is_ok() || !router.connected());
    let mut stopped = false;
    for _ in 0..200 {
        if !router.connected() && !account.connected() {
            stopped = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stopped, "the router or its account actor kept running");
}

async fn lease_owner(router: &Addr<RouterActor>) -> Addr<AccountActor> {
    router.send(GetAccountAddr).await.unwrap()
}

#[derive(Message)]
#[rtype(result = "Addr<AccountActor>")]
struct GetAccountAddr;

impl Handler<GetAccountAddr> for RouterActor {
    type Result = MessageResult<GetAccountAddr>;
    fn handle(&mut self, _: GetAccountAddr, _: &mut Context<Self>) -> Self::Result {
        let entry = self.entries.values().next().unwrap();
        MessageResult(entry.member.addr.clone())
    }
}

pub(crate) fn with_key(key: &str, exclude: &[&str]) -> Acquire {
    Acquire {
        model: "gpt-5.5".to_owned(),
        affinity: Some(key.to_owned()),
        exclude: exclude.iter().map(|id| AccountId::from(*id)).collect(),
        exclude_plans: Vec::new(),
        ..acquire()
    }
}

async fn cool(router: &Addr<RouterActor>, key: &str, secs: u64) -> String {
    let mut lease = router.send(with_key(key, &[])).await.unwrap().unwrap();
    let id = lease.account_id.to_string();
    lease.observe(crate::UpstreamFacts {
        error_code: Some("usage_limit_reached".into()),
        resets_at: Some(std::time::SystemTime::now() + Duration::from_secs(secs)),
        ..Default::default()
    });
    lease
        .finish(crate::Outcome::Completed { status: 429 })
        .await;
    id
}

#[actix_rt::test]
async fn a_conversation_stays_on_its_account_and_moves_only_when_it_cannot_serve() {
    let source = MemorySource::default();
    for id in ["a", "b", "c"] {
        source.put(credentials(id, true, 1));
    }
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 3).await;
    let first = router.send(with_key("conv", &[])).await.unwrap().unwrap();
    let home = first.account_id.clone();
    assert_eq!(first.placement, crate::Placement::New);
    drop(first);
    for _ in 0..10 {
        let lease = router.send(with_key("conv", &[])).await.unwrap().unwrap();
        assert_eq!(lease.account_id, home);
        assert_eq!(lease.placement, crate::Placement::Kept);
    }
    // Failing over inside one request does not move the conversation.
    let detour = router
        .send(with_key("conv", &[home.as_str()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        detour.placement,
        crate::Placement::Detour {
            bound: home.clone()
        }
    );
    drop(detour);
    // The home account cools: the conversation moves, once, and is counted.
    let cooled = cool(&router, "conv", 1).await;
    assert_eq!(cooled, home.to_string());
    let moved = router.send(with_key("conv", &[])).await.unwrap().unwrap();
    assert_eq!(
        moved.placement,
        crate::Placement::Moved { from: home.clone() }
    );
    let new_home = moved.account_id.clone();
    drop(moved);
    assert_eq!(router.send(GetPoolStatus).await.unwrap().affinity_moves, 1);
    // The old account recovers: it does not take the conversation back.
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(router.send(GetPoolStatus).await.unwrap().usable, 3);
    let lease = router.send(with_key("conv", &[])).await.unwrap().unwrap();
    assert_eq!(lease.account_id, new_home);
}

/// A request without a conversation key that replays items account `by` wrote.
fn written_by(by: &str, exclude: &[&str]) -> Acquire {
    Acquire {
        written_by: Some(AccountId::from(by)),
        exclude: exclude.iter().map(|id| AccountId::from(*id)).collect(),
        ..acquire()
    }
}

#[actix_rt::test]
async fn items_written_by_an_account_go_back_to_it_and_a_move_is_reported_without_a_key() {
    let source = MemorySource::default();
    for id in ["a", "b", "c"] {
        source.put(credentials(id, true, 1));
    }
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 3).await;
    for _ in 0..6 {
        let lease = router.send(written_by("b", &[])).await.unwrap().unwrap();
        assert_eq!(lease.account_id.as_str(), "b");
        assert_eq!(lease.placement, crate::Placement::Kept);
    }
    let detour = router.send(written_by("b", &["b"])).await.unwrap().unwrap();
    let bound = AccountId::from("b");
    assert_eq!(detour.placement, crate::Placement::Detour { bound });
    drop(detour);
    let cooled = cool(&router, "elsewhere", 600).await;
    let moved = router
        .send(written_by(&cooled, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(moved.account_id.as_str(), cooled);
    let from = AccountId::from(cooled.as_str());
    assert_eq!(moved.placement, crate::Placement::Moved { from });
    assert_eq!(router.send(GetPoolStatus).await.unwrap().affinity_moves, 1);
}

/// A turn of conversation `key` that continues state only account `on` holds.
pub(crate) fn pinned(key: &str, on: &str) -> Acquire {
    Acquire {
        pinned: Some(AccountId::from(on)),
        ..with_key(key, &[])
    }
}

#[actix_rt::test]
async fn a_pool_of_cooling_accounts_reports_the_earliest_reset() {
    let source = MemorySource::default();
    for id in ["a", "b"] {
        source.put(credentials(id, true, 1));
    }
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 2).await;
    cool(&router, "one", 600).await;
    cool(&router, "two", 300).await;
    let error = router.send(acquire()).await.unwrap().unwrap_err();
    let AcquireError::AllCooling {
        until,
        usage_limit: true,
    } = error
    else {
        panic!("{error:?}");
    };
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(300) && left > Duration::from_secs(290));
    assert_eq!(
        router.send(JudgeExhaustion::default()).await.unwrap(),
        error
    );
}

#[actix_rt::test]
async fn accounts_of_an_excluded_plan_are_skipped_and_unknown_plans_are_not() {
    let source = MemorySource::default();
    let with_plan = |id, plan: Option<&str>| AccountCredentials {
        plan: plan.map(str::to_owned),
        ..credentials(id, true, 1)
    };
    source.put(with_plan("a", Some("plus")));
    source.put(with_plan("b", Some("pro")));
    source.put(with_plan("c", None));
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 3).await;
    let no_plus = |exclude: &[&str]| Acquire {
        exclude_plans: vec!["plus".to_owned()],
        exclude: exclude.iter().map(|id| AccountId::from(*id)).collect(),
        ..acquire()
    };
    for _ in 0..6 {
        let lease = router.send(no_plus(&[])).await.unwrap().unwrap();
        assert_ne!(
            lease.account_id.as_str(),
            "a",
            "a plus account never serves"
        );
    }
    let lease = router.send(no_plus(&["b"])).await.unwrap().unwrap();
    assert_eq!(
        lease.account_id.as_str(),
        "c",
        "an unknown plan is not skipped"
    );
    drop(lease);
    let only_plus_excluded = Acquire {
        exclude_plans: vec!["plus".to_owned(), "pro".to_owned()],
        exclude: vec![AccountId::from("c")],
        ..acquire()
    };
    assert_eq!(
        router.send(only_plus_excluded).await.unwrap().unwrap_err(),
        AcquireError::NoUsableAccount
    );
}

#[actix_rt::test]
async fn a_pool_where_no_plan_serves_the_model_is_not_called_empty() {
    let source = MemorySource::default();
    source.put(AccountCredentials {
        plan: Some("plus".to_owned()),
        ..credentials("a", true, 1)
    });
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 1).await;
    let exclude_plans = vec!["plus".to_owned()];
    let request = Acquire {
        exclude_plans: exclude_plans.clone(),
        ..acquire()
    };
    let error = router.send(request).await.unwrap().unwrap_err();
    assert_eq!(error, AcquireError::NoUsableAccount);
    let verdict = router
        .send(JudgeExhaustion { exclude_plans })
        .await
        .unwrap();
    assert_eq!(verdict, AcquireError::NoUsableAccount);
}

#[actix_rt::test]
async fn reconcile_answers_once_the_pool_follows_the_source() {
    let source = MemorySource::default();
    // A long interval: only Reconcile can make the router follow in this test.
    let router = RouterActor::new(Arc::new(source.clone()), Duration::from_secs(3600)).start();
    synced(&router, 0).await;
    source.put(credentials("a", true, 1));
    source.put(credentials("b", false, 1));
    router.send(Reconcile).await.unwrap().unwrap();
    let mut statuses = router.send(GetAccountStatuses).await.unwrap();
    statuses.sort_by(|x, y| x.id.cmp(&y.id));
    let names: Vec<_> = statuses.iter().map(|s| s.state.name()).collect();
    assert_eq!(names, ["active", "disabled"]);

    source.remove("a");
    router.send(Reconcile).await.unwrap().unwrap();
    let statuses = router.send(GetAccountStatuses).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].id, AccountId::from("b"));
}

/// The router's view of an account may lag what the account just answered (its pushed view is
/// still in the mailbox); the verdict follows the accounts' own answers.
#[actix_rt::test]
async fn the_verdict_follows_what_the_accounts_said_not_a_lagging_view() {
    let source = MemorySource::default();
    let mut account = credentials("a", true, 1);
    account.routing.max_in_flight = Some(1);
    source.put(account);
    let router = RouterActor::new(Arc::new(source), Duration::from_secs(60)).start();
    synced(&router, 1).await;
    let held = router.send(acquire()).await.unwrap().unwrap();
    // A view from before the lease, arriving late.
    let mut stale = router.send(GetAccountStatuses).await.unwrap()[0].clone();
    stale.in_flight = 0;
    router.do_send(crate::account::messages::AccountStateChanged { view: stale });
    assert_eq!(
        router.send(acquire()).await.unwrap().unwrap_err(),
        AcquireError::Busy
    );
    router.do_send(crate::account::messages::AccountStateChanged {
        view: stale_again(&router).await,
    });
    let verdict = router.send(JudgeExhaustion {
        exclude_plans: Vec::new(),
    });
    assert_eq!(verdict.await.unwrap(), AcquireError::Busy);
    drop(held);
}

async fn stale_again(router: &Addr<RouterActor>) -> crate::AccountView {
    let mut stale = router.send(GetAccountStatuses).await.unwrap()[0].clone();
    stale.in_flight = 0;
    stale
}
