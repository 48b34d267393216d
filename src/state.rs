//! What the handlers of both planes share: the settings, where leases are taken, the API-key
//! ring, the model registry, the governor, the pool's metric families, the response memory,
//! content capture, the audit trail and the logger. Built once at startup; cheap to clone. The
//! settings are a snapshot a reload swaps whole (`reload`): a handler loads it without a lock.

use std::sync::Arc;

use actix::Addr;
use arc_swap::Guard;
use relay_actors::{Leases, RouterActor};
use slog::Logger;

use crate::audit::Audit;
use crate::capture::Capture;
use crate::credentials::KeyRing;
use crate::governance::models::ModelRegistry;
use crate::governance::websockets::WebSockets;
use crate::governance::Governor;
use crate::pool::headroom::PoolHeadroom;
use crate::pool::metrics::PoolMetrics;
use crate::recall::ResponseMemory;
use crate::reload::LiveSettings;
use crate::settings::Settings;
use crate::upstream::drift::Drift;
use crate::upstream::websocket::Fallback;

/// Everything handlers share; cheap to clone, built once at startup.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: LiveSettings,
    leases: Leases,
    keys: Arc<KeyRing>,
    models: Arc<ModelRegistry>,
    governor: Governor,
    pool_metrics: PoolMetrics,
    audit: Audit,
    memory: ResponseMemory,
    capture: Capture,
    drift: Drift,
    headroom: PoolHeadroom,
    websockets: WebSockets,
    websocket_fallback: Fallback,
    log: Logger,
}

/// What [`AppState::new`] is built from, besides the settings and the logger.
pub struct Parts {
    pub leases: Leases,
    pub keys: Arc<KeyRing>,
    pub models: Arc<ModelRegistry>,
    pub governor: Governor,
    pub pool_metrics: PoolMetrics,
    pub audit: Audit,
    pub memory: ResponseMemory,
    pub capture: Capture,
    pub drift: Drift,
    pub headroom: PoolHeadroom,
    pub websockets: WebSockets,
    pub websocket_fallback: Fallback,
}

impl AppState {
    pub fn new(settings: LiveSettings, parts: Parts, log: Logger) -> AppState {
        AppState(Arc::new(Inner {
            settings,
            leases: parts.leases,
            keys: parts.keys,
            models: parts.models,
            governor: parts.governor,
            pool_metrics: parts.pool_metrics,
            audit: parts.audit,
            memory: parts.memory,
            capture: parts.capture,
            drift: parts.drift,
            headroom: parts.headroom,
            websockets: parts.websockets,
            websocket_fallback: parts.websocket_fallback,
            log,
        }))
    }

    /// The settings in force now; hold the snapshot for one request at most.
    pub fn settings(&self) -> Guard<Arc<Settings>> {
        self.0.settings.load()
    }
    pub fn router(&self) -> &Addr<RouterActor> {
        self.0.leases.router()
    }
    /// Where request handlers take their leases.
    pub fn leases(&self) -> &Leases {
        &self.0.leases
    }
    pub fn keys(&self) -> &KeyRing {
        &self.0.keys
    }
    pub fn models(&self) -> &ModelRegistry {
        &self.0.models
    }
    pub fn governor(&self) -> &Governor {
        &self.0.governor
    }
    /// Where the data plane counts each account's upstream calls and failovers.
    pub fn pool_metrics(&self) -> &PoolMetrics {
        &self.0.pool_metrics
    }
    /// Where both planes queue their audit rows.
    pub fn audit(&self) -> &Audit {
        &self.0.audit
    }
    /// The responses remembered for stateful clients (`responses.memory`).
    pub fn memory(&self) -> &ResponseMemory {
        &self.0.memory
    }
    /// Content capture: the running captures the request path asks, and the capture file.
    pub fn capture(&self) -> &Capture {
        &self.0.capture
    }
    /// Where what the upstream sends and the relay does not know is counted and logged.
    pub fn drift(&self) -> &Drift {
        &self.0.drift
    }
    /// The pool's rate-limit windows as last read, for the limits callers are shown.
    pub fn headroom(&self) -> &PoolHeadroom {
        &self.0.headroom
    }
    /// The WebSocket connections each key holds open.
    pub fn websockets(&self) -> &WebSockets {
        &self.0.websockets
    }
    /// Whether WebSocket turns go over HTTP for now, the upstream having refused WebSockets.
    pub fn websocket_fallback(&self) -> &Fallback {
        &self.0.websocket_fallback
    }
    pub fn log(&self) -> &Logger {
        &self.0.log
    }
}
