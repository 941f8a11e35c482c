//! A cluster node's `/metrics`: its own (`wagate_cluster_*`: partitions served, requests
//! forwarded and how long their owners took, changelog appends and their latency, restores,
//! snapshots, lease renewals, the front's connections and bodies), then the metrics of every
//! partition engine it serves, each sample labelled with its `partition`, each family's
//! metadata said once (Prometheus' text format wants a family's samples together).

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::registered_counter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    /// `local` (from this node's front to its own engine), `nats` (from this node's front to
    /// the owner's node) or `from_node` (another node's request, answered by an engine here).
    pub via: &'static str,
    /// `answered`, `moving` (the partition changed hands: asked again) or `unavailable`.
    pub answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 50 us to about 26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

fn seconds() -> Histogram {
    // 10 ms to about 160 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

pub struct NodeMetrics {
    registry: Registry,
    pub partitions_served: Gauge,
    pub forwards: Family<ForwardLabels, Counter>,
    pub forward_duration: Histograms<ForwardLabels>,
    pub appends: Family<OutcomeLabels, Counter>,
    /// Writers' batches, fewer appends when concurrent ones go together (`write_group`).
    pub batches: Counter,
    pub append_duration: Histogram,
    pub restores: Family<OutcomeLabels, Counter>,
    pub restore_duration: Histogram,
    pub snapshots: Family<OutcomeLabels, Counter>,
    pub snapshot_bytes: Counter,
    pub lease_renewals: Family<OutcomeLabels, Counter>,
    pub hand_overs: Counter,
    pub connections_refused: Counter,
    pub connections_timed_out: Counter,
    pub bodies_refused: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("wagate_cluster");
        let partitions_served = Gauge::default();
        registry.register(
            "partitions_served",
            "Partitions this node serves now",
            partitions_served.clone(),
        );
        let forwards = Family::<ForwardLabels, Counter>::default();
        registry.register(
            "forwards",
            "Requests sent to a partition's engine, here or on its owner's node",
            forwards.clone(),
        );
        let forward_duration: Histograms<ForwardLabels> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "forward_duration",
            "Time a partition's engine took to answer a forwarded request",
            Unit::Seconds,
            forward_duration.clone(),
        );
        let appends = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "changelog_appends",
            "Batches written to a partition's changelog (stored, fenced or failed)",
            appends.clone(),
        );
        let batches = Counter::default();
        registry.register(
            "changelog_batches",
            "Writers' batches written through the changelog (several may share an append)",
            batches.clone(),
        );
        let append_duration = latency();
        registry.register_with_unit(
            "changelog_append_duration",
            "Time JetStream took to store a batch on its replicas",
            Unit::Seconds,
            append_duration.clone(),
        );
        let restores = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "restores",
            "Partitions taken and restored (served or failed)",
            restores.clone(),
        );
        let restore_duration = seconds();
        registry.register_with_unit(
            "restore_duration",
            "Time from taking a partition's lease to serving it",
            Unit::Seconds,
            restore_duration.clone(),
        );
        let snapshots = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "snapshots",
            "Partition snapshots kept (kept or failed)",
            snapshots.clone(),
        );
        let snapshot_bytes = Counter::default();
        registry.register_with_unit(
            "snapshot",
            "Bytes of the snapshots kept",
            Unit::Bytes,
            snapshot_bytes.clone(),
        );
        let lease_renewals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "lease_renewals",
            "Lease renewals (kept, lost or failed)",
            lease_renewals.clone(),
        );
        let mut counter = |name: &str, help: &str| registered_counter(&mut registry, name, help);
        let hand_overs = counter("hand_overs", "Partitions handed over to another node");
        let connections_refused = counter(
            "connections_refused",
            "Front connections refused at http.max_connections",
        );
        let connections_timed_out = counter(
            "connections_timed_out",
            "Front connections closed for a client too slow or idle",
        );
        let bodies_refused = counter(
            "bodies_refused",
            "Front requests refused at http.max_body_bytes_held",
        );
        NodeMetrics {
            registry,
            partitions_served,
            forwards,
            forward_duration,
            appends,
            batches,
            append_duration,
            restores,
            restore_duration,
            snapshots,
            snapshot_bytes,
            lease_renewals,
            hand_overs,
            connections_refused,
            connections_timed_out,
            bodies_refused,
        }
    }

    pub fn forwarded(&self, via: &'static str, answer: &'static str, took: Duration) {
        let labels = ForwardLabels { via, answer };
        self.forwards.get_or_create(&labels).inc();
        self.forward_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn count(family: &Family<OutcomeLabels, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The node's metrics, then each `(partition, its engine's metrics text)`, as one text.
    pub fn render(&self, engines: &[(u32, String)]) -> String {
        let mut own = String::new();
        if encode(&mut own, &self.registry).is_err() {
            own.clear();
        }
        let own = own.strip_suffix("# EOF\n").unwrap_or(&own);
        let mut out = own.to_string();
        out.push_str(&merge(engines));
        out.push_str("# EOF\n");
        out
    }
}

/// A family's metadata lines and its samples.
struct FamilyText {
    name: String,
    metadata: Vec<String>,
    samples: Vec<String>,
}

/// Engines' metrics texts as one, each sample labelled with its partition (no `# EOF`).
fn merge(engines: &[(u32, String)]) -> String {
    let mut families: Vec<FamilyText> = Vec::new();
    for (partition, text) in engines {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if line.is_empty() || line == "# EOF" {
                continue;
            }
            if let Some(meta) = line.strip_prefix("# ") {
                let name = meta.split_whitespace().nth(1).unwrap_or("");
                let found = families.iter().position(|f| f.name == name);
                let index = found.unwrap_or_else(|| {
                    families.push(FamilyText {
                        name: name.to_string(),
                        metadata: Vec::new(),
                        samples: Vec::new(),
                    });
                    families.len() - 1
                });
                // Each family's metadata once: every engine says the same.
                if !families[index].metadata.iter().any(|m| m == line) {
                    families[index].metadata.push(line.to_string());
                }
                current = Some(index);
                continue;
            }
            let labelled = labelled(line, *partition);
            match current {
                Some(index) => families[index].samples.push(labelled),
                None => families.push(FamilyText {
                    name: String::new(),
                    metadata: Vec::new(),
                    samples: vec![labelled],
                }),
            }
        }
    }
    let mut out = String::new();
    for family in families {
        for line in family.metadata.iter().chain(&family.samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `sample` with `partition="N"` first among its labels.
fn labelled(sample: &str, partition: u32) -> String {
    let name_end = sample.find(['{', ' ']).unwrap_or(sample.len());
    let (name, rest) = sample.split_at(name_end);
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => {
            format!("{name}{{partition=\"{partition}\"{labels}")
        }
        Some(labels) => format!("{name}{{partition=\"{partition}\",{labels}"),
        None => format!("{name}{{partition=\"{partition}\"}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_metrics_merge_into_one_family_each_with_partition_labels() {
        let engine = |accepted: u32| {
            format!(
                "# HELP wagate_messages_accepted Sends accepted.\n# TYPE wagate_messages_accepted counter\n\
wagate_messages_accepted_total {accepted}\n# HELP wagate_decisions Decisions.\n# TYPE wagate_decisions counter\n\
wagate_decisions_total{{tenant=\"a\",outcome=\"accepted\"}} {accepted}\n# EOF\n"
            )
        };
        let merged = merge(&[(1, engine(5)), (3, engine(7))]);
        assert_eq!(
            merged,
            "# HELP wagate_messages_accepted Sends accepted.\n# TYPE wagate_messages_accepted counter\n\
wagate_messages_accepted_total{partition=\"1\"} 5\nwagate_messages_accepted_total{partition=\"3\"} 7\n\
# HELP wagate_decisions Decisions.\n# TYPE wagate_decisions counter\n\
wagate_decisions_total{partition=\"1\",tenant=\"a\",outcome=\"accepted\"} 5\n\
wagate_decisions_total{partition=\"3\",tenant=\"a\",outcome=\"accepted\"} 7\n"
        );
        assert_eq!(labelled("x{} 1", 2), "x{partition=\"2\"} 1");

        let node = NodeMetrics::new();
        node.forwarded("nats", "answered", Duration::from_millis(3));
        NodeMetrics::count(&node.appends, "stored");
        let text = node.render(&[(1, engine(5))]);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.contains("wagate_cluster_forwards_total{via=\"nats\",answer=\"answered\"} 1"));
        assert!(text.contains("wagate_cluster_changelog_appends_total{outcome=\"stored\"} 1"));
        assert!(text.contains("wagate_messages_accepted_total{partition=\"1\"} 5"));
    }
}
