//! How the pool behaves: strategy, health rules, affinity bounds, and the optional ports for
//! persistence and health probes. Built from the `routing.*` settings by the service.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{HealthProber, NoRefresher, PoolStateSink, TokenRefresher};
use crate::state::health::HealthPolicy;
use crate::state::refresh::RefreshPolicy;

/// The `routing.strategy` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Headroom,
    RoundRobin,
    FillFirst,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "headroom" => Some(Strategy::Headroom),
            "round_robin" => Some(Strategy::RoundRobin),
            "fill_first" => Some(Strategy::FillFirst),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct PoolConfig {
    pub strategy: Strategy,
    pub health: HealthPolicy,
    /// Concurrent calls per account unless the account sets its own; 0 means no cap.
    pub default_max_in_flight: u32,
    /// How long an idle conversation stays bound to its account.
    pub affinity_ttl: Duration,
    /// Most conversations remembered; the least recently used are forgotten first.
    pub affinity_capacity: usize,
    /// How often accounts that wait for a probe are probed.
    pub probe_interval: Duration,
    /// Keeps health and quota across restarts; `None` keeps them in memory only.
    pub sink: Option<Arc<dyn PoolStateSink>>,
    /// Checks accounts that wait for a probe; `None` leaves that to real calls.
    pub prober: Option<Arc<dyn HealthProber>>,
    /// Refreshes the accounts' tokens (the default refuses every refresh).
    pub refresher: Arc<dyn TokenRefresher>,
    /// When and how patiently tokens are refreshed.
    pub refresh: RefreshPolicy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            strategy: Strategy::Headroom,
            health: HealthPolicy::default(),
            default_max_in_flight: 0,
            affinity_ttl: Duration::from_secs(3600),
            affinity_capacity: 100_000,
            probe_interval: Duration::from_secs(10),
            sink: None,
            prober: None,
            refresher: Arc::new(NoRefresher),
            refresh: RefreshPolicy::default(),
        }
    }
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("strategy", &self.strategy)
            .field("health", &self.health)
            .field("default_max_in_flight", &self.default_max_in_flight)
            .field("persisted", &self.sink.is_some())
            .field("probed", &self.prober.is_some())
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}
