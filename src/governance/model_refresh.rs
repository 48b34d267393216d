//! Keeps the model registry's catalog fresh: every `models.refresh_interval_secs`, for each plan
//! among the pool's active accounts, the upstream's `/models` is asked with one account of that
//! plan (the next one if it fails). A plan whose fetch fails keeps its last catalog; a plan never
//! fetched leaves the configured catalog in force for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use slog::{debug, warn, Logger};

use super::models::ModelRegistry;
use crate::settings::Settings;
use crate::store::{Operation, Store};
use crate::upstream::outbound::Outbound;
use crate::upstream::UpstreamClient;

/// Everything a refresh needs.
pub struct Refresher {
    pub registry: Arc<ModelRegistry>,
    pub store: Store,
    pub client_version: String,
    pub log: Logger,
}

impl Refresher {
    /// Fetches every plan's catalog once; returns how many plans were fetched.
    pub async fn refresh_once(&self, upstream: &UpstreamClient) -> usize {
        let accounts = match self.store.run(Operation::Read, |s| s.plan_accounts()).await {
            Ok(accounts) => accounts,
            Err(error) => {
                warn!(self.log, "could not read the accounts' plans"; "error" => error.to_string());
                return 0;
            }
        };
        let mut by_plan: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (plan, id) in accounts {
            by_plan.entry(plan).or_default().push(id);
        }
        let mut fetched = 0;
        for (plan, ids) in by_plan {
            if self.refresh_plan(upstream, &plan, ids).await {
                fetched += 1;
            }
        }
        fetched
    }

    async fn refresh_plan(&self, upstream: &UpstreamClient, plan: &str, ids: Vec<String>) -> bool {
        for id in ids {
            let load = id.clone();
            let Ok(Some(account)) = self
                .store
                .run(Operation::Read, move |s| s.load_credentials(&load))
                .await
            else {
                continue;
            };
            match upstream.fetch_models(&account, &self.client_version).await {
                Ok(models) => {
                    debug!(self.log, "model catalog fetched"; "plan" => plan, "models" => models.len());
                    self.registry.set_plan_catalog(plan, models);
                    return true;
                }
                Err(error) => {
                    warn!(self.log, "could not fetch the model catalog";
                        "plan" => plan, "account_id" => id, "error" => error.to_string());
                }
            }
        }
        false
    }
}

/// Refreshes now (bounded, so a slow upstream cannot hold startup) and then every interval, for
/// as long as the runtime lives (or until the returned task is aborted). Does nothing when the
/// interval is 0.
pub async fn start(
    refresher: Refresher,
    settings: &Settings,
    outbound: &Outbound,
) -> Option<JoinHandle<()>> {
    let interval = settings.models.refresh_interval_secs;
    if interval == 0 {
        return None;
    }
    let upstream = UpstreamClient::new(&settings.upstream, outbound);
    let first = refresher.refresh_once(&upstream);
    if actix_web::rt::time::timeout(Duration::from_secs(10), first)
        .await
        .is_err()
    {
        warn!(
            refresher.log,
            "the first model catalog fetch took too long; serving the configured catalog meanwhile"
        );
    }
    Some(actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(Duration::from_secs(interval));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            refresher.refresh_once(&upstream).await;
        }
    }))
}
