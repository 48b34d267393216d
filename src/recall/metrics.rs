//! The memory's families: the bytes and the responses it holds now, set where they change; and
//! the sweep of expired responses before each scrape.

use std::time::Instant;

use futures_util::future::LocalBoxFuture;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::obs::metrics::BeforeEncoding;

/// Handles on the memory's gauges; [`MemoryMetrics::default`] is registered nowhere (a memory
/// in a unit test).
#[derive(Clone, Default)]
pub struct MemoryMetrics {
    pub(super) bytes: Gauge,
    pub(super) entries: Gauge,
}

impl MemoryMetrics {
    pub fn register(registry: &mut Registry) -> MemoryMetrics {
        let metrics = MemoryMetrics::default();
        registry.register(
            "responses_memory_bytes",
            "Bytes of the responses the relay remembers for stateful clients (responses.memory)",
            metrics.bytes.clone(),
        );
        registry.register(
            "responses_memory_entries",
            "Responses the relay remembers for stateful clients (responses.memory)",
            metrics.entries.clone(),
        );
        metrics
    }

    pub(super) fn set(&self, bytes: usize, entries: usize) {
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }
}

/// Before each scrape: expired responses are forgotten, so that the gauges (and the memory) do
/// not keep them while no response is remembered.
impl BeforeEncoding for super::ResponseMemory {
    fn refresh(&self) -> LocalBoxFuture<'_, ()> {
        self.sweep(Instant::now());
        Box::pin(std::future::ready(()))
    }
}
