//! `RouterActor`: keeps one AccountActor per account of the store and leases them out.
//!
//! Reconciliation: every `sync_interval` (and on [`SyncNow`]) the router reads `(id, version)` of
//! every account from the [`AccountSource`], loads the ones that are new or changed, starts,
//! updates or retires actors to match, and restarts actors whose mailbox closed.
//!
//! Supervision: actix's `Supervisor` restarts an actor that *stops*, but a panic inside a handler
//! kills the actor's task instead. The router therefore supervises its accounts itself: an actor
//! found dead (closed mailbox) is restarted from the store, which holds the account's truth.

pub mod messages;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use self::messages::{
    AccountUnreachable, Acquire, AcquireError, GetAccountStatuses, GetPoolStatus, PoolStatus,
    Reconcile, RefreshAccount, RefreshError, SyncNow,
};
use self::state::{round_robin, Candidate};
use crate::account::messages::{
    AccountStateChanged, AccountStatus, GetAccountStatus, GrantLease, RefreshNow,
    ReplaceCredentials, Retire,
};
use crate::account::refresh::RefreshPolicy;
use crate::account::state::AdminState;
use crate::account::AccountActor;
use crate::lease::Lease;
use crate::ports::{AccountSource, NoRefresher, SourceError, TokenRefresher};
use crate::types::{AccountCredentials, AccountId};

struct Entry {
    addr: Addr<AccountActor>,
    version: i64,
    usable: bool,
}

pub struct RouterActor {
    source: Arc<dyn AccountSource>,
    refresher: Arc<dyn TokenRefresher>,
    policy: Arc<RefreshPolicy>,
    sync_interval: Duration,
    entries: BTreeMap<AccountId, Entry>,
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
    pub fn new(source: Arc<dyn AccountSource>, sync_interval: Duration) -> RouterActor {
        RouterActor {
            source,
            refresher: Arc::new(NoRefresher),
            policy: Arc::new(RefreshPolicy::default()),
            sync_interval,
            entries: BTreeMap::new(),
            cursor: 0,
            syncing: false,
            synced: false,
        }
    }

    /// Gives every account actor this refresher and policy (without one, refreshes fail).
    pub fn with_refresher(
        mut self,
        refresher: Arc<dyn TokenRefresher>,
        policy: RefreshPolicy,
    ) -> RouterActor {
        self.refresher = refresher;
        self.policy = Arc::new(policy);
        self
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
                    entry.usable = stored_usable(&credentials);
                    entry.addr.do_send(ReplaceCredentials(credentials));
                }
                _ => {
                    let usable = stored_usable(&credentials);
                    let router = ctx.address().recipient();
                    let refresher = Arc::clone(&self.refresher);
                    let policy = Arc::clone(&self.policy);
                    let addr = AccountActor::new(credentials, router, refresher, policy).start();
                    self.entries.insert(
                        id,
                        Entry {
                            addr,
                            version,
                            usable,
                        },
                    );
                }
            }
        }
    }
}

/// The router's first guess from a stored row; the account corrects it when it knows better.
fn stored_usable(credentials: &AccountCredentials) -> bool {
    credentials.admin == AdminState::Active && credentials.auth.is_valid()
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
    }
}

/// Picks accounts in round-robin order and asks each for a lease until one grants it.
impl Handler<Acquire> for RouterActor {
    type Result = ResponseFuture<Result<Lease, AcquireError>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        if self.entries.is_empty() {
            return Box::pin(async { Err(AcquireError::EmptyPool) });
        }
        let candidates: Vec<Candidate<'_>> = self
            .entries
            .iter()
            .map(|(id, e)| Candidate {
                id: id.as_str(),
                usable: e.usable,
            })
            .collect();
        let exclude: Vec<&str> = msg.exclude.iter().map(AccountId::as_str).collect();
        let order: Vec<(AccountId, Addr<AccountActor>)> =
            round_robin(&candidates, self.cursor, &exclude)
                .into_iter()
                .filter_map(|id| {
                    let (id, entry) = self.entries.get_key_value(&AccountId::from(id))?;
                    Some((id.clone(), entry.addr.clone()))
                })
                .collect();
        self.cursor = self.cursor.wrapping_add(1);
        let router = ctx.address();
        Box::pin(async move {
            for (id, addr) in order {
                match addr.send(GrantLease).await {
                    Ok(Ok(lease)) => return Ok(lease),
                    Ok(Err(_refused)) => continue,
                    Err(_closed) => router.do_send(AccountUnreachable(id)),
                }
            }
            Err(AcquireError::NoUsableAccount)
        })
    }
}

impl Handler<AccountStateChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: AccountStateChanged, _: &mut Context<Self>) {
        if let Some(entry) = self.entries.get_mut(&msg.id) {
            entry.usable = msg.usable;
        }
    }
}

/// Restarts a dead account actor from the source at once.
impl Handler<AccountUnreachable> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: AccountUnreachable, ctx: &mut Context<Self>) {
        if let Some(entry) = self.entries.get_mut(&msg.0) {
            entry.usable = false;
        }
        self.start_sync(ctx);
    }
}

impl Handler<SyncNow> for RouterActor {
    type Result = ();

    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) {
        self.start_sync(ctx);
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
        MessageResult(PoolStatus {
            accounts: self.entries.len(),
            usable: self
                .entries
                .values()
                .filter(|e| e.usable && e.addr.connected())
                .count(),
            synced: self.synced,
        })
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
