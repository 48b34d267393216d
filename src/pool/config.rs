//! The `routing.*` and `oauth.refresh_*` settings as the actors' [`PoolConfig`], with the store,
//! the upstream and the OAuth issuer plugged into its ports.

use std::sync::Arc;
use std::time::Duration;

use relay_actors::{HealthPolicy, PoolConfig, Strategy};
use slog::Logger;

use super::audited_refresh::AuditedRefresher;
use super::probe::ModelsProbe;
use super::state::StorePoolState;
use crate::audit::Audit;
use crate::oauth::endpoint::OauthEndpoint;
use crate::oauth::refresher::StoreTokenRefresher;
use crate::settings::{RoutingStrategy, Settings};
use crate::store::Store;
use crate::upstream::outbound::Outbound;

pub fn pool_config(
    settings: &Settings,
    store: &Store,
    outbound: &Outbound,
    audit: &Audit,
    log: &Logger,
) -> PoolConfig {
    let routing = &settings.routing;
    let ms = Duration::from_millis;
    PoolConfig {
        strategy: match routing.strategy {
            RoutingStrategy::Headroom => Strategy::Headroom,
            RoutingStrategy::RoundRobin => Strategy::RoundRobin,
            RoutingStrategy::FillFirst => Strategy::FillFirst,
        },
        health: HealthPolicy {
            failure_threshold: routing.breaker_failure_threshold,
            breaker_backoff_initial: ms(routing.breaker_backoff_initial_ms),
            breaker_backoff_max: ms(routing.breaker_backoff_max_ms),
            rate_limit_backoff_initial: ms(routing.rate_limit_backoff_initial_ms),
            rate_limit_backoff_max: ms(routing.rate_limit_backoff_max_ms),
        },
        default_max_in_flight: routing.max_in_flight,
        affinity_ttl: Duration::from_secs(routing.affinity_ttl_secs),
        affinity_capacity: routing.affinity_capacity,
        probe_interval: ms(routing.probe_interval_ms),
        sink: Some(Arc::new(StorePoolState {
            store: store.clone(),
            log: log.clone(),
        })),
        prober: Some(Arc::new(ModelsProbe::new(&settings.upstream, outbound))),
        refresher: Arc::new(AuditedRefresher {
            inner: Arc::new(StoreTokenRefresher {
                store: store.clone(),
                endpoint: OauthEndpoint::new(&settings.oauth, &settings.upstream, outbound),
                log: log.clone(),
            }),
            audit: audit.clone(),
        }),
        refresh: settings.oauth.refresh_policy(),
    }
}
