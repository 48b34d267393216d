//! `RouterActor`: keeps one AccountActor per account of the store and leases them out.
//!
//! Reconciliation: every `sync_interval` (and on [`SyncNow`]) the router reads `(id, version)` of
//! every account from the [`AccountSource`], loads the ones that are new or changed, starts,
//! updates or retires actors to match, and restarts actors whose mailbox closed.
//!
//! Selection ([`selection`]), conversation affinity ([`affinity`]) and the answer to [`Acquire`]
//! (`acquire.rs`) work on each account's [`AccountView`](crate::AccountView), which the accounts
//! push whenever it changes, with the in-flight count read from the account's gate. The router
//! publishes its members to the lane (`lane/`), through which request handlers take the common
//! lease on their own thread ([`Leases`]); what the lane leaves goes to the router as [`Acquire`].
//! Every `probe_interval` the router asks accounts that wait for a health probe to run one.
//!
//! Supervision: actix's `Supervisor` restarts an actor that *stops*, but a panic inside a handler
//! kills the actor's task instead. The router therefore supervises its accounts itself: an actor
//! found dead (closed mailbox) is restarted from the store, which holds the account's truth.

mod acquire;
pub mod affinity;
mod lane;
pub mod messages;
pub mod selection;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use self::lane::{Lane, Member};
use self::messages::{
    AccountUnreachable, Acquire, AcquireError, GetAccountStatuses, GetPoolStatus, PoolStatus,
    Reconcile, RefreshAccount, RefreshError, Shutdown, SyncNow,
};
use crate::account::lease::Lease;
use crate::account::messages::{
    AccountStateChanged, AccountStatus, GetAccountStatus, ProbeNow, RefreshNow, ReplaceCredentials,
    Retire,
};
use crate::account::AccountActor;
use crate::config::PoolConfig;
use crate::ports::{AccountSource, SourceError};
use crate::types::{AccountCredentials, AccountId};

/// An account the router keeps: the store version it was loaded at, and what the lane sees of it.
struct Entry {
    version: i64,
    member: Member,
}

pub struct RouterActor {
    source: Arc<dyn AccountSource>,
    sync_interval: Duration,
    config: Arc<PoolConfig>,
    entries: BTreeMap<AccountId, Entry>,
    /// What request handlers read: the members, affinity and the round-robin cursor.
    lane: Arc<Lane>,
    syncing: bool,
    synced: bool,
    /// Set once `Shutdown` arrived: who waits for the router to stop. No account starts after.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

/// What request handlers hold to take leases: the router's address, and its lane, through which
/// the common lease is taken on the handler's own thread (see `lane/`).
#[derive(Clone)]
pub struct Leases {
    router: Addr<RouterActor>,
    lane: Arc<Lane>,
}

impl Leases {
    pub fn router(&self) -> &Addr<RouterActor> {
        &self.router
    }

    /// A lease on the best account for `request`: taken on this thread when that account serves
    /// plainly, else asked of the router (which asks the accounts, refreshes, probes).
    pub async fn acquire(&self, request: Acquire) -> Result<Lease, AcquireError> {
        if let Some(lease) = self.lane.try_grant(&request) {
            return Ok(lease);
        }
        match self.router.send(request).await {
            Ok(result) => result,
            // The router is gone or swamped: nothing in the pool can be judged.
            Err(_mailbox) => Err(AcquireError::NoUsableAccount),
        }
    }
}

/// What one reconciliation read: every id in the store, and the accounts that had to be loaded.
struct SyncResult {
    present: HashSet<AccountId>,
    loaded: Vec<AccountCredentials>,
}

impl RouterActor {
    /// A router with the default pool configuration (no persistence, no probes).
    pub fn new(source: Arc<dyn AccountSource>, sync_interval: Duration) -> RouterActor {
        Self::with_config(source, sync_interval, PoolConfig::default())
    }

    pub fn with_config(
        source: Arc<dyn AccountSource>,
        sync_interval: Duration,
        config: PoolConfig,
    ) -> RouterActor {
        let config = Arc::new(config);
        RouterActor {
            source,
            sync_interval,
            lane: Arc::new(Lane::new(Arc::clone(&config))),
            config,
            entries: BTreeMap::new(),
            syncing: false,
            synced: false,
            shutdown: None,
        }
    }

    /// Starts the router; leases are then taken through the returned handle.
    pub fn start_leasing(self) -> Leases {
        let lane = Arc::clone(&self.lane);
        Leases {
            router: self.start(),
            lane,
        }
    }

    /// Tells the lane the members as they are now.
    fn publish_members(&self) {
        let members = self.entries.values().map(|e| e.member.clone()).collect();
        self.lane.publish(members);
    }

    /// `(id, version)` of every live actor: what a read of the source is compared against.
    fn known_versions(&self) -> BTreeMap<AccountId, i64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.member.addr.connected())
            .map(|(id, e)| (id.clone(), e.version))
            .collect()
    }

    fn start_sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        self.syncing = true;
        let read = read_changes(Arc::clone(&self.source), self.known_versions());
        ctx.spawn(read.into_actor(self).map(|result, act, ctx| {
            act.syncing = false;
            // On an error the next interval tries again; the pool keeps serving as it is.
            if let Ok(result) = result {
                act.apply_sync(result, ctx);
                act.synced = true;
            }
        }));
    }

    fn apply_sync(&mut self, result: SyncResult, ctx: &mut Context<Self>) {
        if self.shutdown.is_some() {
            return;
        }
        let gone: Vec<AccountId> = self
            .entries
            .keys()
            .filter(|id| !result.present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(entry) = self.entries.remove(&id) {
                entry.member.addr.do_send(Retire);
            }
        }
        for credentials in result.loaded {
            let id = credentials.id.clone();
            let version = credentials.version;
            match self.entries.get_mut(&id) {
                Some(entry) if entry.member.addr.connected() => {
                    entry.version = version;
                    let view = Arc::make_mut(&mut entry.member.view);
                    view.state.admin = credentials.admin;
                    view.routing = credentials.routing;
                    entry.member.plan = credentials.plan.as_deref().map(Arc::from);
                    entry.member.addr.do_send(ReplaceCredentials(credentials));
                }
                _ => {
                    let plan = credentials.plan.as_deref().map(Arc::from);
                    let router = ctx.address().recipient();
                    let actor =
                        AccountActor::with_config(credentials, router, Arc::clone(&self.config));
                    let view = Arc::new(actor.view());
                    let gate = actor.gate();
                    let member = Member {
                        view,
                        plan,
                        addr: actor.start(),
                        gate,
                    };
                    self.entries.insert(id, Entry { version, member });
                }
            }
        }
        self.publish_members();
    }
}

/// Reads the source and loads every account that is new, changed or not in `known`.
async fn read_changes(
    source: Arc<dyn AccountSource>,
    known: BTreeMap<AccountId, i64>,
) -> Result<SyncResult, SourceError> {
    let versions = source.versions().await?;
    let mut loaded = Vec::new();
    for (id, version) in &versions {
        if known.get(id) != Some(version) {
            // One unreadable account must not keep the others from being followed; the source
            // reports its own errors, and the next sync tries this one again.
            if let Ok(Some(credentials)) = source.load(id.clone()).await {
                loaded.push(credentials);
            }
        }
    }
    let present = versions.into_iter().map(|(id, _)| id).collect();
    Ok(SyncResult { present, loaded })
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_sync(ctx);
        ctx.run_interval(self.sync_interval, |act, ctx| act.start_sync(ctx));
        if self.config.prober.is_some() {
            ctx.run_interval(self.config.probe_interval, |act, _| act.probe_due());
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for told in self.shutdown.take().into_iter().flatten() {
            let _ = told.send(());
        }
    }
}

impl Handler<AccountStateChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: AccountStateChanged, _: &mut Context<Self>) {
        if let Some(entry) = self.entries.get_mut(&msg.view.id) {
            entry.member.view = Arc::new(msg.view);
            self.publish_members();
        }
    }
}

/// Restarts a dead account actor from the source at once.
impl Handler<AccountUnreachable> for RouterActor {
    type Result = ();

    fn handle(&mut self, _: AccountUnreachable, ctx: &mut Context<Self>) {
        // The sync loads every account whose actor is not connected.
        self.start_sync(ctx);
    }
}

impl Handler<SyncNow> for RouterActor {
    type Result = ();

    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) {
        self.start_sync(ctx);
    }
}

/// Retires every account and stops once they all have: an account lets a refresh in flight end
/// and writes a rotated set its store has not taken once more (bounded) before it stops. Answered
/// when the router has stopped; a second `Shutdown` (the binary's own stop and an `AppHandle`'s)
/// waits for the same stop.
impl Handler<Shutdown> for RouterActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (told, stopped) = oneshot::channel();
        match &mut self.shutdown {
            Some(waiting) => waiting.push(told),
            None => {
                self.shutdown = Some(vec![told]);
                let retiring: Vec<_> = std::mem::take(&mut self.entries)
                    .into_values()
                    .map(|entry| entry.member.addr.send(Retire))
                    .collect();
                self.publish_members();
                let all_retired = futures_util::future::join_all(retiring);
                ctx.spawn(all_retired.into_actor(self).map(|_, _, ctx| ctx.stop()));
            }
        }
        Box::pin(async move {
            let _ = stopped.await;
        })
    }
}

/// Reads the source now and answers when the result is applied. Applying is idempotent, so this
/// may overlap the periodic sync.
impl Handler<Reconcile> for RouterActor {
    type Result = ResponseActFuture<Self, Result<(), SourceError>>;

    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) -> Self::Result {
        let read = read_changes(Arc::clone(&self.source), self.known_versions());
        Box::pin(read.into_actor(self).map(|result, act, ctx| {
            act.apply_sync(result?, ctx);
            act.synced = true;
            Ok(())
        }))
    }
}

/// Asks every account for its status; an account that does not answer is left out.
impl Handler<GetAccountStatuses> for RouterActor {
    type Result = ResponseFuture<Vec<AccountStatus>>;

    fn handle(&mut self, _: GetAccountStatuses, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .entries
            .values()
            .map(|e| e.member.addr.send(GetAccountStatus))
            .collect();
        Box::pin(async move {
            futures_util::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect()
        })
    }
}

impl Handler<GetPoolStatus> for RouterActor {
    type Result = MessageResult<GetPoolStatus>;

    fn handle(&mut self, _: GetPoolStatus, _: &mut Context<Self>) -> Self::Result {
        let now = SystemTime::now();
        MessageResult(PoolStatus {
            accounts: self.entries.len(),
            usable: self
                .entries
                .values()
                .filter(|e| e.member.view.serves_at(now) && e.member.addr.connected())
                .count(),
            synced: self.synced,
            conversations: self.lane.conversations(),
            affinity_moves: self.lane.affinity_moves(),
        })
    }
}

impl RouterActor {
    /// Asks every account that waits for a health probe to run one (each runs one at a time).
    fn probe_due(&self) {
        let now = SystemTime::now();
        for entry in self.entries.values() {
            let view = &entry.member.view;
            if view.state.is_usable() && !view.probing && view.state.health.needs_probe(now) {
                entry.member.addr.do_send(ProbeNow);
            }
        }
    }
}

/// Forwards an operator's "refresh now" to the account and waits for its result.
impl Handler<RefreshAccount> for RouterActor {
    type Result = ResponseFuture<Result<(), RefreshError>>;

    fn handle(&mut self, msg: RefreshAccount, _: &mut Context<Self>) -> Self::Result {
        let addr = self.entries.get(&msg.0).map(|e| e.member.addr.clone());
        Box::pin(async move {
            let addr = addr.ok_or(RefreshError::NotFound)?;
            match addr.send(RefreshNow).await {
                Ok(result) => Ok(result?),
                Err(_closed) => Err(RefreshError::NotFound),
            }
        })
    }
}
