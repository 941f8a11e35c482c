//! Cluster mode over NATS JetStream (docs/ARCHITECTURE.md, "Cluster mode"): so far the
//! partitions' ownership (`leases`) and their fenced changelogs (`changelog`); the engine's
//! group commit through the changelog, restore, routing and hand-off follow.

pub mod changelog;
pub mod leases;

/// What went wrong talking to JetStream.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS JetStream: {0}")]
    JetStream(String),
}

impl ClusterError {
    pub(crate) fn of(error: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(error.to_string())
    }
}
