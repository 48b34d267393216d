//! The capture family: captured calls by what became of them — `written` to the capture file,
//! `dropped` (the writer's queue was full), `failed` (the file refused the write).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// What became of captured calls.
#[derive(Debug, Clone, Copy)]
pub enum Fate {
    Written,
    Dropped,
    Failed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Cheap to clone; [`CaptureMetrics::default`] counts into a family no registry shows.
#[derive(Clone, Default)]
pub struct CaptureMetrics {
    records: Family<ResultLabels, Counter>,
}

impl CaptureMetrics {
    pub fn register(registry: &mut Registry) -> CaptureMetrics {
        let metrics = CaptureMetrics::default();
        registry.register(
            "capture_records",
            "Captured calls (audit.capture) by result: written, dropped, failed",
            metrics.records.clone(),
        );
        // Every result is exported from the start, at 0.
        for result in [Fate::Written, Fate::Dropped, Fate::Failed] {
            metrics.count(result, 0);
        }
        metrics
    }

    /// Records counted as `result` so far.
    #[cfg(test)]
    pub fn counted(&self, result: Fate) -> u64 {
        self.records
            .get_or_create(&ResultLabels {
                result: Self::label(result),
            })
            .get()
    }

    fn label(result: Fate) -> &'static str {
        match result {
            Fate::Written => "written",
            Fate::Dropped => "dropped",
            Fate::Failed => "failed",
        }
    }

    pub fn count(&self, result: Fate, n: u64) {
        let result = Self::label(result);
        self.records
            .get_or_create(&ResultLabels { result })
            .inc_by(n);
    }
}
