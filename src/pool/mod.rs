//! The glue between the store and the actors: the store is the [`AccountSource`] the router
//! reconciles against and the [`PoolStateSink`](relay_actors::PoolStateSink) that keeps health
//! across restarts ([`state`]); the health probe calls the upstream ([`probe`]); the `routing.*`
//! settings become the actors' [`PoolConfig`](relay_actors::PoolConfig) ([`config`]), whose
//! token refresher records its failures in the audit trail ([`audited_refresh`]); operators
//! see the pool state through [`view`] and its families on `GET /metrics` ([`metrics`]).

pub mod audited_refresh;
pub mod config;
pub mod headroom;
pub mod metrics;
pub mod probe;
pub mod state;
pub mod view;

use futures_util::future::BoxFuture;
use relay_actors::{AccountCredentials, AccountId, AccountSource, SourceError};
use slog::{warn, Logger};

use crate::store::{Operation, Store};

/// The store, seen by the router as its source of accounts. Read errors are logged here (the
/// actors have no logger) and returned to the router, which keeps serving and tries again.
pub struct StoreAccountSource {
    pub store: Store,
    pub log: Logger,
}

impl AccountSource for StoreAccountSource {
    fn versions(&self) -> BoxFuture<'static, Result<Vec<(AccountId, i64)>, SourceError>> {
        let store = self.store.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let rows = store
                .run(Operation::Sync, |s| s.account_versions())
                .await
                .map_err(|e| {
                    warn!(log, "could not read the accounts"; "error" => e.to_string());
                    SourceError(e.to_string())
                })?;
            Ok(rows
                .into_iter()
                .map(|(id, version)| (AccountId::from(id.as_str()), version))
                .collect())
        })
    }

    fn load(
        &self,
        id: AccountId,
    ) -> BoxFuture<'static, Result<Option<AccountCredentials>, SourceError>> {
        let store = self.store.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let account = id.to_string();
            store
                .run(Operation::Sync, move |s| s.load_credentials(id.as_str()))
                .await
                .map_err(|e| {
                    warn!(log, "could not load an account"; "account_id" => account, "error" => e.to_string());
                    SourceError(e.to_string())
                })
        })
    }
}
