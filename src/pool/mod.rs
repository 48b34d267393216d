//! The glue between the store and the actors: the store is the [`AccountSource`] the router
//! reconciles against and the [`PoolStateSink`](relay_actors::PoolStateSink) that keeps health
//! across restarts ([`state`]); the health probe calls the upstream ([`probe`]); the `routing.*`
//! settings become the actors' [`PoolConfig`](relay_actors::PoolConfig) ([`config`]); operators
//! see the pool state through [`view`]. The API keys are re-read on the sync rhythm too.

pub mod config;
pub mod probe;
pub mod state;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use relay_actors::{AccountCredentials, AccountId, AccountSource, SourceError};
use slog::{warn, Logger};

use crate::admin::auth::{load_tokens, AdminTokenRing};
use crate::governance::Governor;
use crate::http::auth::KeyRing;
use crate::store::Store;

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
            let rows = store.run(|s| s.account_versions()).await.map_err(|e| {
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
                .run(move |s| s.load_credentials(id.as_str()))
                .await
                .map_err(|e| {
                    warn!(log, "could not load an account"; "account_id" => account, "error" => e.to_string());
                    SourceError(e.to_string())
                })
        })
    }
}

/// Reads the active API keys into `keys` once.
pub async fn load_keys(store: &Store, keys: &KeyRing) -> Result<(), crate::store::StoreError> {
    let active = store.run(|s| s.active_keys()).await?;
    keys.replace(active);
    Ok(())
}

/// Re-reads the API keys and the admin tokens every `interval`, for as long as the server's
/// runtime lives (or until the returned task is aborted), so the CLI's creations and revocations
/// take effect without a restart. A failed read keeps the previous set. Each round also forgets
/// the client addresses whose failed-authentication budget is whole again.
pub fn spawn_credential_sync(
    store: Store,
    keys: Arc<KeyRing>,
    governor: Governor,
    admin_tokens: Arc<AdminTokenRing>,
    interval: Duration,
    log: Logger,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(interval);
        loop {
            ticker.tick().await;
            governor
                .auth_failures()
                .sweep(std::time::Instant::now(), &log);
            match load_keys(&store, &keys).await {
                Ok(()) => governor.forget_all_but(&keys.subjects()),
                Err(error) => {
                    warn!(log, "could not re-read API keys; keeping the previous set"; "error" => error.to_string());
                }
            }
            if let Err(error) = load_tokens(&store, &admin_tokens).await {
                warn!(log, "could not re-read admin tokens; keeping the previous set"; "error" => error.to_string());
            }
        }
    })
}
