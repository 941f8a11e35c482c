//! Numbers registered at run time (`POST /wagate/admin/numbers` through a front), so every
//! node's front routes them: the front that saw the registration answered keeps the number's and
//! its business account's partition in a replicated JetStream KV bucket (`wagate_numbers`,
//! `n.<id>` and `a.<account>`, no expiry), and every node watches the bucket into the routing
//! map's learned ids. `[[numbers]]` stay the first word; the bucket adds what the config lacks.
//! A node learns a registration within the watch's delivery (milliseconds); a request for it
//! meanwhile is asked of the partitions in turn, as any request naming no known number is.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{Config, Operation, Store};
use futures_util::StreamExt;

use super::{bounded, ClusterError};

/// The longest one exchange with JetStream (opening a watch, reading the bucket) may take.
const JETSTREAM_WAIT: Duration = Duration::from_secs(10);

/// Ids learned from the bucket: number or business account → partition.
pub type Learned = Arc<RwLock<HashMap<u64, u32>>>;

pub struct NumberDirectory {
    kv: Store,
}

impl NumberDirectory {
    /// Opens (creating it if need be) the bucket with `replicas` copies.
    pub async fn open(client: async_nats::Client, replicas: usize) -> Result<Self, ClusterError> {
        let config = Config {
            bucket: "wagate_numbers".to_string(),
            history: 1,
            num_replicas: replicas,
            ..Default::default()
        };
        let kv = super::open_kv(client, config).await?;
        Ok(NumberDirectory { kv })
    }

    /// Keeps number `id` of business account `account` in `partition`.
    pub async fn record(&self, id: u64, account: u64, partition: u32) -> Result<(), ClusterError> {
        let value = bytes::Bytes::from(partition.to_string());
        for key in [format!("n.{id}"), format!("a.{account}")] {
            self.kv
                .put(key, value.clone())
                .await
                .map_err(ClusterError::of)?;
        }
        Ok(())
    }

    /// Fills `learned` with every id kept, then with each one kept later, until `closed`; a
    /// watch that ends (a NATS server lost) is opened again, after a pause.
    pub async fn watch(&self, learned: Learned, mut closed: tokio::sync::watch::Receiver<bool>) {
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = closed.changed() => return,
                }
            }
            first = false;
            // The watch of what comes next opens first, then what is kept is read: nothing
            // kept in between is missed (read twice at worst). A watch "with history" is no
            // use here: on an empty bucket it ends at once.
            let opening = async { self.kv.watch_all().await.map_err(ClusterError::of) };
            let watching = match bounded(JETSTREAM_WAIT, opening).await {
                Ok(watching) => watching,
                Err(error) => {
                    tracing::warn!(%error, "watching registered numbers failed: trying again");
                    continue;
                }
            };
            if let Err(error) = bounded(JETSTREAM_WAIT, self.read_all(&learned)).await {
                tracing::warn!(%error, "reading registered numbers failed: trying again");
                continue;
            }
            tokio::pin!(watching);
            loop {
                let entry = tokio::select! {
                    entry = watching.next() => entry,
                    _ = closed.changed() => return,
                };
                match entry {
                    Some(Ok(entry)) if entry.operation == Operation::Put => {
                        learn(&learned, &entry.key, &entry.value)
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, "watching registered numbers failed: watching again");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Every id kept now, into `learned`.
    async fn read_all(&self, learned: &Learned) -> Result<(), ClusterError> {
        let keys = self.kv.keys().await.map_err(ClusterError::of)?;
        tokio::pin!(keys);
        while let Some(key) = keys.next().await {
            let key = key.map_err(ClusterError::of)?;
            if let Some(value) = self.kv.get(&key).await.map_err(ClusterError::of)? {
                learn(learned, &key, &value);
            }
        }
        Ok(())
    }
}

/// Keeps `n.<id>` or `a.<id>` = partition in `learned`.
fn learn(learned: &Learned, key: &str, value: &[u8]) {
    let id = key
        .split_once('.')
        .and_then(|(_, id)| id.parse::<u64>().ok());
    let partition = std::str::from_utf8(value)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if let (Some(id), Some(partition)) = (id, partition) {
        super::locked_write(learned).insert(id, partition);
    }
}
