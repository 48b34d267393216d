//! What a scrape reads before the account and pool families are encoded: every account's view
//! from its actor and the pool's status, in one round trip to the router each, and the accounts
//! as the store lists them (the operator's label, the plan, tokens that do not open — what the
//! actors do not hold), joined as the admin API joins them.

use std::collections::HashMap;
use std::time::SystemTime;

use actix::Addr;
use relay_actors::{AccountId, AccountView, GetAccountStatuses, GetPoolStatus, RouterActor};
use slog::{warn, Logger};

use super::labels::Account;
use crate::pool::view::shown_state;
use crate::store::{AccountSummary, Operation, Store};

/// One account as a scrape sees it.
pub(super) struct Sample {
    pub(super) account: Account,
    /// One of [`ACCOUNT_STATES`](crate::pool::view::ACCOUNT_STATES).
    pub(super) state: &'static str,
    /// The operator's label and the plan (`""` when unknown); absent when the store could not
    /// be read.
    pub(super) info: Option<(String, String)>,
    pub(super) token_expires_at: Option<i64>,
    /// What its actor says; absent while the router has not started it (or cannot: its tokens
    /// do not open).
    pub(super) live: Option<AccountView>,
}

impl Sample {
    fn of(row: AccountSummary, live: Option<AccountView>, now: SystemTime) -> Sample {
        let state = shown_state(&row, live.as_ref(), now);
        let token_expires_at = live
            .as_ref()
            .map_or(row.token_expires_at, |view| view.token_expires_at);
        Sample {
            account: Account(AccountId::from(row.id.as_str())),
            state,
            info: Some((row.label, row.plan.unwrap_or_default())),
            token_expires_at,
            live,
        }
    }

    /// An account known only from its actor (the store could not be read).
    fn live_only(view: AccountView, now: SystemTime) -> Sample {
        Sample {
            account: Account(view.id.clone()),
            state: view.state.name_at(now),
            info: None,
            token_expires_at: view.token_expires_at,
            live: Some(view),
        }
    }
}

/// What one scrape read.
pub(super) struct Reading {
    pub(super) accounts: Vec<Sample>,
    pub(super) pool: relay_actors::PoolStatus,
}

/// Where a scrape reads from.
pub(super) struct Sources {
    pub(super) router: Addr<RouterActor>,
    pub(super) store: Store,
    pub(super) log: Logger,
}

impl Sources {
    /// The pool now; `None` when the router does not answer (the relay is stopping).
    pub(super) async fn read(&self) -> Option<Reading> {
        let (views, pool, rows) = futures_util::join!(
            self.router.send(GetAccountStatuses),
            self.router.send(GetPoolStatus),
            self.store
                .run(Operation::Read, |store| store.list_accounts()),
        );
        let (Ok(views), Ok(pool)) = (views, pool) else {
            warn!(
                self.log,
                "metrics: the router did not answer; the account families keep their last values"
            );
            return None;
        };
        let rows = rows
            .map_err(|error| {
                warn!(self.log, "metrics: could not list the accounts; their labels and plans are left out";
                    "error" => error.to_string());
            })
            .ok();
        let accounts = join(rows, views, SystemTime::now());
        Some(Reading { accounts, pool })
    }
}

/// Every account the store lists, with its actor's view; the actors' views alone without the
/// store. An actor whose row is gone is leaving the pool: it is left out.
fn join(
    rows: Option<Vec<AccountSummary>>,
    views: Vec<AccountView>,
    now: SystemTime,
) -> Vec<Sample> {
    let Some(rows) = rows else {
        return views
            .into_iter()
            .map(|view| Sample::live_only(view, now))
            .collect();
    };
    let mut live: HashMap<AccountId, AccountView> = views
        .into_iter()
        .map(|view| (view.id.clone(), view))
        .collect();
    rows.into_iter()
        .map(|row| {
            let view = live.remove(&AccountId::from(row.id.as_str()));
            Sample::of(row, view, now)
        })
        .collect()
}
