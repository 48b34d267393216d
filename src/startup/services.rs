//! The parts both planes share, started before either listens: the audit trail's writer, the
//! router with its account actors (reading the pool from the store), the key rings, the
//! governor, the model registry, and the background loops that keep them current.

use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use relay_actors::{GetPoolStatus, Leases, RouterActor};
use slog::Logger;

use super::{Background, StartupError};
use crate::audit::{Audit, AuditMetrics};
use crate::capture::Capture;
use crate::credentials::sync::spawn_credential_sync;
use crate::credentials::{AdminTokenRing, KeyRing};
use crate::governance::metrics::GovernanceMetrics;
use crate::governance::model_refresh::{self, Refresher};
use crate::governance::models::ModelRegistry;
use crate::governance::websockets::WebSockets;
use crate::governance::Governor;
use crate::obs::metrics::Registry;
use crate::pool::headroom::PoolHeadroom;
use crate::pool::metrics::PoolMetrics;
use crate::pool::StoreAccountSource;
use crate::recall::{MemoryMetrics, ResponseMemory};
use crate::settings::Settings;
use crate::state::Parts;
use crate::store::{Store, StoreError};
use crate::upstream::drift::Drift;
use crate::upstream::outbound::Outbound;
use crate::upstream::websocket::Fallback;

/// What the two planes serve, started before either listens: the router with its account
/// actors, the key rings, the governor, the model registry, and the loops that keep them current.
pub(super) struct Core {
    pub(super) parts: Parts,
    pub(super) admin_tokens: Arc<AdminTokenRing>,
    pub(super) background: Background,
}

impl Core {
    /// Starts the pool, loads the credentials and the governor from the store, then the loops
    /// that re-read them and the model catalog; returns once the pool has been read.
    pub(super) async fn start(
        settings: &Settings,
        store: &Store,
        outbound: &Outbound,
        metrics: &mut Registry,
        log: &Logger,
    ) -> Result<Core, StartupError> {
        store.register_metrics(metrics);
        let audit = Audit::start(settings, AuditMetrics::register(metrics), log);
        audit.verify_in_background(settings);
        let sync_interval = Duration::from_millis(settings.store.sync_interval_ms);
        let leases = start_pool(settings, store, outbound, &audit, sync_interval, log);
        let pool_metrics =
            PoolMetrics::register(metrics, leases.router().clone(), store.clone(), log.clone());
        let (keys, admin_tokens) = load_rings(store).await?;
        let governance = GovernanceMetrics::register(metrics, settings.metrics.per_key);
        let limits = settings.limits.clone();
        let governor = Governor::load(limits, store.clone(), log.clone(), governance).await?;
        let sync = spawn_credential_sync(
            store.clone(),
            Arc::clone(&keys),
            governor.clone(),
            Arc::clone(&admin_tokens),
            sync_interval,
            log.clone(),
        );
        wait_for_first_sync(leases.router()).await;
        let memory = ResponseMemory::new(MemoryMetrics::register(metrics));
        let models = Arc::new(ModelRegistry::new(&settings.models));
        models.register_metrics(metrics);
        let refresh = start_model_refresh(settings, store, outbound, &models, log).await;
        let capture = Capture::start(settings, store, metrics, log)?;
        let reread = capture.spawn_reread(sync_interval);
        let (headroom, reading) = PoolHeadroom::start(leases.router().clone(), sync_interval);
        let tasks = [sync, reading]
            .into_iter()
            .chain(refresh)
            .chain(reread)
            .collect();
        let background = Background {
            router: leases.router().clone(),
            tasks: Arc::new(tasks),
            audit: audit.clone(),
        };
        let parts = Parts {
            leases,
            keys,
            models,
            governor,
            pool_metrics,
            audit,
            memory,
            capture,
            drift: Drift::register(metrics, log.clone()),
            headroom,
            websockets: WebSockets::register(metrics),
            websocket_fallback: Fallback::register(metrics),
        };
        Ok(Core {
            parts,
            admin_tokens,
            background,
        })
    }
}

/// The API keys and admin tokens as the store holds them now.
async fn load_rings(store: &Store) -> Result<(Arc<KeyRing>, Arc<AdminTokenRing>), StoreError> {
    let keys = Arc::new(KeyRing::default());
    keys.load(store).await?;
    let admin_tokens = Arc::new(AdminTokenRing::default());
    admin_tokens.load(store).await?;
    Ok((keys, admin_tokens))
}

/// The router and its account actors, reading the pool from the store every `sync_interval`.
fn start_pool(
    settings: &Settings,
    store: &Store,
    outbound: &Outbound,
    audit: &Audit,
    sync_interval: Duration,
    log: &Logger,
) -> Leases {
    let source = Arc::new(StoreAccountSource {
        store: store.clone(),
        log: log.clone(),
    });
    let pool = crate::pool::config::pool_config(settings, store, outbound, audit, log);
    RouterActor::with_config(source, sync_interval, pool).start_leasing()
}

/// The model catalog's first fetch (bounded) and the loop that keeps it fresh, if any.
async fn start_model_refresh(
    settings: &Settings,
    store: &Store,
    outbound: &Outbound,
    models: &Arc<ModelRegistry>,
    log: &Logger,
) -> Option<JoinHandle<()>> {
    let refresher = Refresher {
        registry: Arc::clone(models),
        store: store.clone(),
        client_version: settings.models.client_version.clone(),
        log: log.clone(),
    };
    model_refresh::start(refresher, settings, outbound).await
}

/// The first read of the store runs in the background; wait for it (bounded) so a request that
/// arrives right after startup finds the pool loaded.
async fn wait_for_first_sync(router: &actix::Addr<RouterActor>) {
    for _ in 0..500 {
        if let Ok(status) = router.send(GetPoolStatus).await {
            if status.synced {
                return;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}
