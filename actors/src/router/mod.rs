//! `RouterActor`: keeps one AccountActor per account of the store and leases them out.
//!
//! Reconciliation: every `sync_interval` (and on [`SyncNow`]) the router reads `(id, version)` of
//! every account from the [`AccountSource`], loads the ones that are new or changed, starts,
//! updates or retires actors to match, and restarts actors whose mailbox closed.
//!
//! Selection ([`selection`]), conversation affinity ([`affinity`]) and the answer to [`Acquire`]
//! (`acquire.rs`) work on each account's [`AccountView`], which the accounts push whenever it
//! changes — the router never queries them on the request path. Every `probe_interval` the
//! router asks accounts that wait for a health probe to run one.
//!
//! Supervision: actix's `Supervisor` restarts an actor that *stops*, but a panic inside a handler
//! kills the actor's task instead. The router therefore supervises its accounts itself: an actor
//! found dead (closed mailbox) is restarted from the store, which holds the account's truth.

mod acquire;
pub mod affinity;
pub mod messages;
pub mod selection;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use self::affinity::AffinityTable;
use self::messages::{
    AccountUnreachable, GetAccountStatuses, GetPoolStatus, PoolStatus, Reconcile, RefreshAccount,
    RefreshError, Shutdown, SyncNow,
};
use crate::account::messages::{
    AccountStateChanged, AccountStatus, AccountView, GetAccountStatus, ProbeNow, RefreshNow,
    ReplaceCredentials, Retire,
};
use crate::account::AccountActor;
use crate::config::PoolConfig;
use crate::ports::{AccountSource, SourceError};
use crate::types::{AccountCredentials, AccountId};

struct Entry {
    addr: Addr<AccountActor>,
    version: i64,
    /// The account's latest view of itself, pushed by the account.
    view: AccountView,
    /// The account's ChatGPT plan, when known: which models it serves depends on it.
    plan: Option<String>,
}

impl Entry {
    /// False when the account's plan is one of `exclude_plans` (plans that do not serve the
    /// request's model); an account whose plan is unknown is never excluded for it.
    fn serves_plan(&self, exclude_plans: &[String]) -> bool {
        self.plan
            .as_ref()
            .is_none_or(|plan| !exclude_plans.contains(plan))
    }
}

pub struct RouterActor {
    source: Arc<dyn AccountSource>,
    sync_interval: Duration,
    config: Arc<PoolConfig>,
    entries: BTreeMap<AccountId, Entry>,
    affinity: AffinityTable,
    affinity_moves: u64,
    cursor: usize,
    syncing: bool,
    synced: bool,
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
        RouterActor {
            source,
            sync_interval,
            affinity: AffinityTable::new(config.affinity_ttl, config.affinity_capacity),
            config: Arc::new(config),
            entries: BTreeMap::new(),
            affinity_moves: 0,
            cursor: 0,
            syncing: false,
            synced: false,
        }
    }

    /// `(id, version)` of every live actor: what a read of the source is compared against.
    fn known_versions(&self) -> BTreeMap<AccountId, i64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.addr.connected())
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
        let gone: Vec<AccountId> = self
            .entries
            .keys()
            .filter(|id| !result.present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(entry) = self.entries.remove(&id) {
                entry.addr.do_send(Retire);
            }
        }
        for credentials in result.loaded {
            let id = credentials.id.clone();
            let version = credentials.version;
            match self.entries.get_mut(&id) {
                Some(entry) if entry.addr.connected() => {
                    entry.version = version;
                    entry.view.state.admin = credentials.admin;
                    entry.view.routing = credentials.routing;
                    entry.plan.clone_from(&credentials.plan);
                    entry.addr.do_send(ReplaceCredentials(credentials));
                }
                _ => {
                    let plan = credentials.plan.clone();
                    let router = ctx.address().recipient();
                    let actor =
                        AccountActor::with_config(credentials, router, Arc::clone(&self.config));
                    let view = actor.view();
                    let addr = actor.start();
                    self.entries.insert(
                        id,
                        Entry {
                            addr,
                            version,
                            view,
                            plan,
                        },
                    );
                }
            }
        }
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
}

impl Handler<AccountStateChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: AccountStateChanged, _: &mut Context<Self>) {
        if let Some(entry) = self.entries.get_mut(&msg.view.id) {
            entry.view = msg.view;
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

impl Handler<Shutdown> for RouterActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        for entry in std::mem::take(&mut self.entries).into_values() {
            entry.addr.do_send(Retire);
        }
        ctx.stop();
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
            .map(|e| e.addr.send(GetAccountStatus))
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
                .filter(|e| e.view.serves_at(now) && e.addr.connected())
                .count(),
            synced: self.synced,
            conversations: self.affinity.len(),
            affinity_moves: self.affinity_moves,
        })
    }
}

impl RouterActor {
    /// Asks every account that waits for a health probe to run one (each runs one at a time).
    fn probe_due(&self) {
        let now = SystemTime::now();
        for entry in self.entries.values() {
            let view = &entry.view;
            if view.state.is_usable() && !view.probing && view.state.health.needs_probe(now) {
                entry.addr.do_send(ProbeNow);
            }
        }
    }
}

/// Forwards an operator's "refresh now" to the account and waits for its result.
impl Handler<RefreshAccount> for RouterActor {
    type Result = ResponseFuture<Result<(), RefreshError>>;

    fn handle(&mut self, msg: RefreshAccount, _: &mut Context<Self>) -> Self::Result {
        let addr = self.entries.get(&msg.0).map(|e| e.addr.clone());
        Box::pin(async move {
            let addr = addr.ok_or(RefreshError::NotFound)?;
            match addr.send(RefreshNow).await {
                Ok(result) => Ok(result?),
                Err(_closed) => Err(RefreshError::NotFound),
            }
        })
    }
}
