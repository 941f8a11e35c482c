//! The `[cluster]` section: present, `wagate serve` runs as one node of a cluster over NATS
//! JetStream; absent, as the standalone server it always was (invariant C6).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (leases and forwarded requests name it).
    pub node_id: String,
    /// NATS servers to connect to, comma-separated (`127.0.0.1:4222,127.0.0.1:4223`).
    pub nats_url: String,
    /// Partitions the state is split into, by business portfolio; fixed for the cluster's
    /// life (every node must say the same).
    pub partitions: u32,
    /// How long a partition's lease lasts without renewal: the longest a dead node's
    /// partitions wait for a new owner. Longer than JetStream's leader election (a few s).
    pub lease_secs: u64,
    /// Copies of the changelog and the leases JetStream keeps (3: one NATS server may die).
    pub replicas: usize,
    /// How often each partition's owner keeps a snapshot of its store (0: never), so that a
    /// restore replays only the changelog after it.
    pub snapshot_secs: u64,
    /// How long the changelog keeps a record: far longer than snapshots are apart.
    pub changelog_retention_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            nats_url: "127.0.0.1:4222".to_string(),
            partitions: 16,
            lease_secs: 6,
            replicas: 3,
            snapshot_secs: 300,
            changelog_retention_secs: 7 * 86_400,
        }
    }
}

impl ClusterConfig {
    /// What is wrong with the section, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.node_id.is_empty()
            || !self
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(
                "cluster.node_id must be set, of letters, digits, '-' and '_' only".to_string(),
            );
        }
        if self.partitions == 0 || self.partitions > 4_096 {
            problems.push("cluster.partitions must be 1 to 4096".to_string());
        }
        if self.lease_secs < 2 {
            problems.push("cluster.lease_secs must be at least 2".to_string());
        }
        if self.snapshot_secs > 0 && self.changelog_retention_secs < self.snapshot_secs * 10 {
            problems.push(
                "cluster.changelog_retention_secs must be at least ten snapshot intervals"
                    .to_string(),
            );
        }
        if !(1..=5).contains(&self.replicas) {
            problems.push("cluster.replicas must be 1 to 5".to_string());
        }
        problems
    }

    /// The partition of business portfolio `portfolio`.
    pub fn partition_of(&self, portfolio: u64) -> u32 {
        (mix64(portfolio) % u64::from(self.partitions)) as u32
    }
}

/// A 64-bit finaliser (SplitMix64's), so portfolios with close ids spread over partitions.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portfolios_spread_over_every_partition_and_stay_where_they_are() {
        let config = ClusterConfig {
            node_id: "a".into(),
            partitions: 8,
            ..Default::default()
        };
        let mut seen = [0u32; 8];
        for portfolio in 1..=800 {
            let partition = config.partition_of(portfolio);
            assert_eq!(partition, config.partition_of(portfolio));
            seen[partition as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert!(config.problems().is_empty());
        let bad = ClusterConfig {
            node_id: "a b".into(),
            partitions: 0,
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
