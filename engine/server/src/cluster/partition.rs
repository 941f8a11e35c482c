//! One partition served by this node: taken (its lease), claimed (an epoch record that fences
//! off the previous owner), restored (a fresh local RocksDB with every changelog record up to
//! the claim applied), then served by a whole wagate engine over its [`ReplicatedStore`] on a
//! loopback port of its own, which the node's front forwards to. Stopped when its lease is
//! lost, it is fenced, or it is handed to another node.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use wagate_durable::message_ids::{begin_ids_at, partition_base};
use wagate_store::{Batch, RocksStore, Store};

use super::changelog::{is_epoch, AppendError, Changelog, WAIT};
use super::leases::Lease;
use super::node_metrics::NodeMetrics;
use super::replicated_store::ReplicatedStore;
use super::snapshot::{self, Snapshots};
use super::ClusterError;
use crate::config::ServerConfig;

/// A partition being served here.
pub struct Served {
    pub lease: Lease,
    /// Where its engine listens (loopback).
    pub http: SocketAddr,
    /// Its engine's gRPC port (loopback), connected when first asked.
    pub grpc: tonic::transport::Channel,
    /// Raised once a write was refused: a newer owner exists, or the changelog failed.
    pub fenced: Arc<AtomicBool>,
    /// Its store, for snapshots.
    pub store: Arc<ReplicatedStore>,
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
}

/// What a partition's engine needs from the node.
pub struct Context<'a> {
    pub config: &'a ServerConfig,
    pub changelog: Arc<Changelog>,
    pub snapshots: Arc<Snapshots>,
    /// The runtime that owns the NATS connection (changelog appends run there).
    pub cluster: tokio::runtime::Handle,
    /// The runtime the engines and their HTTP servers run on.
    pub engines: tokio::runtime::Handle,
    pub metrics: Arc<NodeMetrics>,
}

/// The config of `partition`'s engine: the node's, on loopback ports, in its own directory,
/// with the numbers of its portfolios only.
fn partition_config(config: &ServerConfig, partition: u32, dir: &Path) -> ServerConfig {
    let mut own = config.clone();
    let cluster = own.cluster.take().unwrap_or_default();
    own.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    own.grpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    own.storage.data_dir = dir.to_path_buf();
    own.numbers
        .retain(|seed| cluster.partition_of(seed.portfolio) == partition);
    own
}

/// Restores `lease`'s partition and starts serving it.
pub async fn start(context: &Context<'_>, lease: Lease) -> Result<Served, ClusterError> {
    let partition = lease.partition;
    let started = std::time::Instant::now();
    let writer = match context.changelog.claim(partition, lease.epoch).await {
        Ok(writer) => writer,
        Err(AppendError::Fenced(_)) => {
            return Err(ClusterError::of("another node claimed the partition first"))
        }
        Err(AppendError::Cluster(error)) => return Err(error),
    };
    let dir = context
        .config
        .storage
        .data_dir
        .join(format!("partition-{partition}"));
    // The changelog is the record: whatever this node kept of the partition before is
    // dropped and rebuilt (from the newest snapshot, then the changelog after it), so it can
    // never disagree with the partition's other owners.
    let reading = tokio::time::timeout(WAIT, context.snapshots.get(partition)).await;
    let snapshot = match reading.unwrap_or_else(|_| Err(ClusterError::of("timed out"))) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::warn!(partition, %error, "reading the partition's snapshot failed: replaying all");
            None
        }
    };
    let (opening, upto) = (dir.clone(), writer.last());
    let (local, from) = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(&opening);
        let mut from = 1;
        if let Some(blob) = snapshot {
            match snapshot::unpack(&blob, &opening) {
                Ok(covered) if covered < upto => from = covered + 1,
                Ok(covered) => {
                    tracing::warn!(
                        partition,
                        covered,
                        upto,
                        "a snapshot past the claim: replaying all"
                    );
                    let _ = std::fs::remove_dir_all(&opening);
                }
                Err(error) => {
                    tracing::warn!(partition, %error, "a damaged snapshot: replaying all");
                    let _ = std::fs::remove_dir_all(&opening);
                }
            }
        }
        RocksStore::open(&opening).map(|local| (local, from))
    })
    .await
    .map_err(ClusterError::of)?
    .map_err(ClusterError::of)?;
    let local = Arc::new(local);
    let replaying = local.clone();
    let replayed = context
        .changelog
        .replay(partition, from, upto, &mut |_, record| {
            if is_epoch(record) {
                return Ok(());
            }
            let batch = Batch::decode(record).map_err(ClusterError::of)?;
            replaying.write(&batch, false).map_err(ClusterError::of)
        })
        .await?;
    let fenced = Arc::new(AtomicBool::new(false));
    let store = Arc::new(ReplicatedStore::new(
        local,
        context.changelog.clone(),
        writer,
        context.cluster.clone(),
        fenced.clone(),
        context.metrics.clone(),
    ));
    // Message ids unique across the cluster, naming their partition (written through the
    // changelog, so every later owner counts on from it).
    let counting = store.clone();
    tokio::task::spawn_blocking(move || begin_ids_at(counting.as_ref(), partition_base(partition)))
        .await
        .map_err(ClusterError::of)?
        .map_err(ClusterError::of)?;
    let store_kept = store.clone();
    let config = partition_config(context.config, partition, &dir);
    let (stop, stopped) = oneshot::channel::<()>();
    let (listening, listens) = oneshot::channel();
    let serving = context.engines.spawn(async move {
        let served = crate::serve_over(
            config,
            Some(store),
            |at| {
                let _ = listening.send(at);
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await;
        if let Err(error) = served {
            tracing::error!(partition, %error, "a partition's engine stopped with an error");
        }
    });
    let at = tokio::time::timeout(Duration::from_secs(60), listens)
        .await
        .map_err(|_| ClusterError::of("the partition's engine did not start within 60 s"))?
        .map_err(|_| ClusterError::of("the partition's engine failed to start"))?;
    // Its connection's tasks run beside the engines, off the cluster's runtime.
    let grpc = {
        let _engines = context.engines.enter();
        tonic::transport::Endpoint::from_shared(format!("http://{}", at.grpc))
            .map_err(ClusterError::of)?
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    };
    tracing::info!(
        partition,
        epoch = lease.epoch,
        replayed,
        from_snapshot = from > 1,
        took_ms = started.elapsed().as_millis() as u64,
        "serving a partition"
    );
    Ok(Served {
        lease,
        http: at.http,
        grpc,
        fenced,
        store: store_kept,
        stop: Some(stop),
        serving,
    })
}

impl Served {
    /// Whether a write was refused: the partition may no longer be served here.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops the partition's engine (open requests finish; its grace bounds the wait).
    pub async fn stop(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(grace, &mut self.serving)
            .await
            .is_err()
        {
            self.serving.abort();
        }
        tracing::info!(
            partition = self.lease.partition,
            "stopped serving a partition"
        );
    }
}
