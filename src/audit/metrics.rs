//! The audit trail's families: rows written, rows lost (the queue full, a write failed, the
//! trail not open), failed writes, and rows waiting to be written. Updated with atomics by the
//! request path (a row queued or lost) and by the writer.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The handles the audit trail updates; cheap to clone.
#[derive(Clone, Default)]
pub struct AuditMetrics {
    pub written: Counter,
    pub lost: Counter,
    pub write_errors: Counter,
    pub pending: Gauge,
}

impl AuditMetrics {
    /// Registers the families (`codex_relay_audit_…`).
    pub fn register(registry: &mut Registry) -> AuditMetrics {
        let metrics = AuditMetrics::default();
        registry.register(
            "audit_rows_written",
            "Audit rows written to the audit trail",
            metrics.written.clone(),
        );
        registry.register(
            "audit_rows_lost",
            "Audit rows that could not be written (queue full, write failed, trail not open)",
            metrics.lost.clone(),
        );
        registry.register(
            "audit_write_errors",
            "Writes of a batch of audit rows that failed",
            metrics.write_errors.clone(),
        );
        registry.register(
            "audit_rows_pending",
            "Audit rows queued and not yet written",
            metrics.pending.clone(),
        );
        metrics
    }
}
