//! What the durable engine measures for an operator: how long each group commit takes and how
//! many records it writes, and how long accepted messages wait before they go out. Prometheus
//! histograms (`prometheus-client`), registered by whoever exposes them (the server's
//! `/metrics`). Observed once per group commit and once per message handed over, never on the
//! decision path.

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The durable engine's histograms; clones share their counts.
#[derive(Clone)]
pub struct DurableMetrics {
    /// Seconds one group commit's write took (synced or not, as configured).
    pub commit_seconds: Histogram,
    /// Records (puts and deletes) one group commit wrote.
    pub commit_records: Histogram,
    /// Seconds from acceptance to the first hand-over to the upstream (pacing and queues).
    pub time_queued_seconds: Histogram,
}

/// Seconds one group commit's write took: 20 µs to about 5 s.
pub(crate) fn commit_seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_02, 2.0, 18))
}

/// Records one group commit wrote: 1 to 32,768.
pub(crate) fn commit_records_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Acceptance to first hand-over: 1 ms to about 36 h (a send can wait for a pacing slot or a
/// limit to free).
pub(crate) fn time_queued_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 14))
}

impl DurableMetrics {
    /// Adds these histograms to `registry` (under its prefix; help texts end without a period,
    /// which prometheus-client adds).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "group_commit_duration",
            "Time one group commit's write took",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register(
            "group_commit_records",
            "Records one group commit wrote",
            self.commit_records.clone(),
        );
        registry.register_with_unit(
            "message_time_queued",
            "Time from acceptance to the first hand-over to the upstream",
            Unit::Seconds,
            self.time_queued_seconds.clone(),
        );
    }
}
