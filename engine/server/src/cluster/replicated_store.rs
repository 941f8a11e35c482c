//! A partition's store in cluster mode: every batch of writes is first appended to the
//! partition's fenced changelog (stored by JetStream on its replicas) and only then applied to
//! the local RocksDB, unsynced: the changelog is the durable record, the local store the fast
//! state and dedupe index, rebuilt from the changelog when the partition moves. So the engine's
//! group commit acknowledges a send only once its batch is replicated (invariant C2), and a
//! node fenced off by a newer owner can write, so acknowledge or mark in flight, nothing (C1,
//! C3). Reads are the local store's.
//!
//! Writes are applied in the changelog's order: one at a time, under a lock held across the
//! append and the local write, so a replay yields the same state. The batches of writers that
//! come while an append is under way go together in the next (`write_group`): one round trip
//! for all of them. The append runs on the
//! cluster's own runtime (which owns the NATS connection), so an engine thread or an async
//! handler blocked here never starves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wagate_store::{Batch, Family, RocksStore, Store, StoreError};

use super::changelog::{AppendError, Changelog, Writer, WAIT};
use super::locked;
use super::node_metrics::NodeMetrics;
use super::write_group::WriteGroup;

/// At most this many bytes of writers' batches go in one append (a record past a NATS message's
/// size is written in parts, each a round trip).
const GROUP_MAX_BYTES: usize = 4 << 20;

pub struct ReplicatedStore {
    local: Arc<RocksStore>,
    changelog: Arc<Changelog>,
    writer: Mutex<Writer>,
    runtime: tokio::runtime::Handle,
    fenced: Arc<AtomicBool>,
    metrics: Arc<NodeMetrics>,
    group: WriteGroup,
}

impl ReplicatedStore {
    /// Writes of `local` go through `writer`'s partition of `changelog` first, appended on
    /// `runtime`; `fenced` is raised when a newer owner refused one.
    pub fn new(
        local: Arc<RocksStore>,
        changelog: Arc<Changelog>,
        writer: Writer,
        runtime: tokio::runtime::Handle,
        fenced: Arc<AtomicBool>,
        metrics: Arc<NodeMetrics>,
    ) -> ReplicatedStore {
        ReplicatedStore {
            local,
            changelog,
            writer: Mutex::new(writer),
            runtime,
            fenced,
            metrics,
            group: WriteGroup::new(GROUP_MAX_BYTES),
        }
    }

    /// A checkpoint of the local store in `dir`, holding exactly the changelog's records up
    /// to the sequence returned: taken under the writer's lock, so no write is half in it.
    pub fn checkpoint(&self, dir: &std::path::Path) -> Result<u64, StoreError> {
        let writer = locked(&self.writer);
        if self.fenced.load(Ordering::Acquire) {
            return Err(StoreError::Io(format!(
                "partition {} is no longer this node's: no snapshot of it",
                writer.partition
            )));
        }
        self.local.checkpoint(dir)?;
        Ok(writer.last())
    }

    fn append(&self, writer: &mut Writer, record: Vec<u8>) -> Result<(), StoreError> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let (changelog, mut moving) = (self.changelog.clone(), *writer);
        self.runtime.spawn(async move {
            let stored = changelog.append_record(&mut moving, &record).await;
            let _ = answer.send(stored.map(|_| moving));
        });
        let started = std::time::Instant::now();
        let answer = answered.recv_timeout(WAIT + WAIT);
        let outcome = match &answer {
            Ok(Ok(_)) => "stored",
            Ok(Err(AppendError::Fenced(_))) => "fenced",
            _ => "failed",
        };
        NodeMetrics::count(&self.metrics.appends, outcome);
        self.metrics
            .append_duration
            .observe(started.elapsed().as_secs_f64());
        match answer {
            Ok(Ok(moved)) => {
                *writer = moved;
                Ok(())
            }
            Ok(Err(AppendError::Fenced(partition))) => {
                self.fenced.store(true, Ordering::Release);
                Err(StoreError::Io(format!(
                    "partition {partition} now belongs to another node: this node may not write it"
                )))
            }
            // Not stored, or not known to be: later appends would name a sequence that may no
            // longer be the last, so the partition stops here and is restored from the
            // changelog, which then says whether this write was kept.
            Ok(Err(AppendError::Cluster(error))) => {
                self.fenced.store(true, Ordering::Release);
                Err(StoreError::Io(format!(
                    "the changelog refused a write: {error}"
                )))
            }
            Err(_) => {
                self.fenced.store(true, Ordering::Release);
                Err(StoreError::Io(
                    "the changelog did not answer a write in time".to_string(),
                ))
            }
        }
    }
}

impl Store for ReplicatedStore {
    fn write(&self, batch: &Batch, _sync: bool) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.metrics.batches.inc();
        self.group.write(batch, &|combined| self.commit(combined))
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.local.get(family, key)
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.local.scan(family, start, end, visit)
    }

    fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        self.local.purge_expired(now)
    }

    fn estimate_keys(&self, family: Family) -> Option<u64> {
        self.local.estimate_keys(family)
    }
}

impl ReplicatedStore {
    /// `batch` (one writer's, or several combined) appended to the changelog, then applied
    /// to the local store.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut writer = locked(&self.writer);
        if self.fenced.load(Ordering::Acquire) {
            return Err(StoreError::Io(format!(
                "partition {} is no longer this node's to write",
                writer.partition
            )));
        }
        let mut record = Vec::with_capacity(batch.bytes() + batch.len() * 18 + 9);
        batch.encode(&mut record);
        self.append(&mut writer, record)?;
        // The changelog holds it on its replicas: the local copy needs no sync of its own.
        self.local.write(batch, false)
    }
}
