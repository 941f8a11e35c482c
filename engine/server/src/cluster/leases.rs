//! Who owns each partition: one key per partition (`p.<n>`) in a replicated JetStream KV
//! bucket whose entries live `lease` long (the bucket's `max_age`). A node takes a free
//! partition by creating its key (JetStream refuses a create when the key exists) and keeps it
//! by updating the key at the revision it last wrote (refused once anyone else wrote it, or
//! after it expired and was taken): a renewal that fails means the partition is lost, and the
//! node stops serving it at once. The revision a node took the key at is its epoch: it only
//! grows, so a later owner's epoch is always greater.

use std::time::Duration;

use async_nats::jetstream::kv::{Config, CreateErrorKind, Store, UpdateErrorKind};

use super::ClusterError;

/// A partition this node holds: its number, the epoch it took it at, and the revision of
/// its latest renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub epoch: u64,
    revision: u64,
}

/// This node's view of the lease bucket.
pub struct Leases {
    kv: Store,
    node: String,
}

fn key(partition: u32) -> String {
    format!("p.{partition}")
}

impl Leases {
    /// Opens (creating it if need be) the bucket `bucket` with `replicas` copies, its leases
    /// lasting `lease`, as node `node`.
    pub async fn open(
        client: async_nats::Client,
        bucket: &str,
        replicas: usize,
        lease: Duration,
        node: &str,
    ) -> Result<Leases, ClusterError> {
        let config = Config {
            bucket: bucket.to_string(),
            history: 1,
            max_age: lease,
            num_replicas: replicas,
            ..Default::default()
        };
        let kv = super::open_kv(client, config).await?;
        Ok(Leases {
            kv,
            node: node.to_string(),
        })
    }

    /// Takes `partition` if nobody holds it.
    pub async fn take(&self, partition: u32) -> Result<Option<Lease>, ClusterError> {
        match self
            .kv
            .create(key(partition), self.node.clone().into())
            .await
        {
            Ok(revision) => {
                tracing::info!(partition, epoch = revision, node = %self.node, "took a partition");
                Ok(Some(Lease {
                    partition,
                    epoch: revision,
                    revision,
                }))
            }
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(ClusterError::of(error)),
        }
    }

    /// Keeps `lease` for another lease period; `None` when it was lost (expired, or taken).
    pub async fn renew(&self, lease: Lease) -> Result<Option<Lease>, ClusterError> {
        match self
            .kv
            .update(
                key(lease.partition),
                self.node.clone().into(),
                lease.revision,
            )
            .await
        {
            Ok(revision) => Ok(Some(Lease { revision, ..lease })),
            // JetStream refuses the update when the revision moved on: lost, unless the
            // revision is this node's own renewal whose answer went missing (a retry after a
            // timeout while a leader was elected): only this node writes its id there.
            Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                match self.holder(lease.partition).await? {
                    Some((node, revision)) if node == self.node && revision > lease.revision => {
                        Ok(Some(Lease { revision, ..lease }))
                    }
                    _ => {
                        tracing::warn!(
                            partition = lease.partition,
                            epoch = lease.epoch,
                            "a partition's lease was lost"
                        );
                        Ok(None)
                    }
                }
            }
            // Not an answer about the lease (a timeout, a leader being elected): try again
            // within the lease, and stop serving when it runs out.
            Err(error) => Err(ClusterError::of(error)),
        }
    }

    /// Gives `lease` up (a hand-off): deleted only if still this node's at its revision, so
    /// a lease already lost is left to its new holder.
    pub async fn release(&self, lease: Lease) -> Result<(), ClusterError> {
        self.kv
            .delete_expect_revision(key(lease.partition), Some(lease.revision))
            .await
            .map_err(ClusterError::of)
    }

    /// Says this node is alive for another lease period (key `n.<node>`).
    pub async fn announce(&self) -> Result<(), ClusterError> {
        self.kv
            .put(format!("n.{}", self.node), self.node.clone().into())
            .await
            .map(|_| ())
            .map_err(ClusterError::of)
    }

    /// How many nodes said they were alive within the last lease period (at least 1: this).
    pub async fn live_nodes(&self) -> Result<usize, ClusterError> {
        use futures_util::StreamExt;
        let mut keys = self.kv.keys().await.map_err(ClusterError::of)?;
        let mut nodes = 0;
        while let Some(key) = keys.next().await {
            if key.map_err(ClusterError::of)?.starts_with("n.") {
                nodes += 1;
            }
        }
        Ok(nodes.max(1))
    }

    /// Who holds `partition` now, if anyone: the node and its latest revision.
    pub async fn holder(&self, partition: u32) -> Result<Option<(String, u64)>, ClusterError> {
        let entry = self
            .kv
            .entry(key(partition))
            .await
            .map_err(ClusterError::of)?;
        Ok(entry
            .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
            .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision)))
    }
}
