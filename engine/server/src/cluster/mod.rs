//! Cluster mode over NATS JetStream (docs/ARCHITECTURE.md, "Cluster mode"): the partitions'
//! ownership (`leases`), their fenced changelogs (`changelog`), the store that writes through
//! them (`replicated_store`, concurrent writers' batches combined by `write_group`), their snapshots (`snapshot`), a partition restored and served
//! (`partition`), where a request
//! goes (`routing`, `wire`, `grpc_wire`, `grpc_front`, with numbers registered at run time in
//! `number_directory`), and the node that ties them together
//! (`node`, with its metrics in `node_metrics`, and `engine_stopped` telling a partition
//! engine that stopped from one that failed).

pub mod bulk_split;
pub mod changelog;
pub(crate) mod engine_stopped;
pub mod grpc_front;
pub mod grpc_wire;
pub mod leases;
pub mod node;
pub mod node_metrics;
pub mod number_directory;
pub mod partition;
pub mod replicated_store;
pub mod routing;
pub mod snapshot;
pub mod wire;
pub mod write_group;

/// `mutex`'s guard, also after a thread panicked holding it: the maps it guards (partitions
/// served, owners read, a changelog writer) stay whole, since every change to them is one
/// insert or remove.
pub(crate) fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `lock`'s write guard, also after a thread panicked holding it (each change is one insert).
pub(crate) fn locked_write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// `asked`, or an error once `limit` passed: no exchange with JetStream waits unbounded.
pub(crate) async fn bounded<T>(
    limit: std::time::Duration,
    asked: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(limit, asked)
        .await
        .unwrap_or_else(|_| Err(ClusterError::of("JetStream did not answer in time")))
}

/// The KV bucket `config` names, created as `config` says when it does not exist yet.
pub(crate) async fn open_kv(
    client: async_nats::Client,
    config: async_nats::jetstream::kv::Config,
) -> Result<async_nats::jetstream::kv::Store, ClusterError> {
    let jetstream = async_nats::jetstream::new(client);
    match jetstream.get_key_value(&config.bucket).await {
        Ok(kv) => Ok(kv),
        Err(_) => jetstream
            .create_key_value(config)
            .await
            .map_err(ClusterError::of),
    }
}

/// What went wrong talking to JetStream, or to a partition's engine.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    #[error("the partition's engine: {0}")]
    Engine(String),
}

impl ClusterError {
    pub(crate) fn of(error: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(error.to_string())
    }

    /// A request to a partition's engine that failed, with each cause under it (the HTTP
    /// client's own words are only its kind, "client error (SendRequest)").
    pub(crate) fn engine(error: &(dyn std::error::Error + 'static)) -> ClusterError {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        ClusterError::Engine(text)
    }
}
