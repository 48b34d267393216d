//! The memory's families: the bytes and the responses it holds now, set where they change.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
