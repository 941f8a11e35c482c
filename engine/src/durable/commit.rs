//! Group commit: each shard worker hands its batch of writes to its committer thread, which
//! drains whatever else is queued (up to [`MAX_GROUP_BYTES`]), writes it all as one synced
//! batch, and only then completes every waiting caller. RocksDB merges the concurrent synced
//! writes of the shards' committers into one log write, so one fsync serves them all.
//!
//! A write that fails (disk full, I/O error) is fatal for new work: the engine's memory has
//! moved past what the disk holds, so every later commit is refused with the first error and
//! the caller sees it; restarting recovers from what was synced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::registry::Registry;
use crate::store::keys::{registry_key, registry_kind};
use crate::store::{Batch, Family, Store, StoreError};

pub const MAX_GROUP_BYTES: usize = 8 << 20;

/// One shard batch's writes and what to do once they are durable (or not).
pub struct CommitJob {
    pub batch: Batch,
    pub done: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

/// The shared state of every committer: the store and the first failure.
pub struct Durability {
    pub store: Arc<dyn Store>,
    pub sync: bool,
    failure: Mutex<Option<StoreError>>,
    /// Commit latency in microseconds, one sample per group, while recording is on.
    latencies: Mutex<Vec<u32>>,
    record_latency: AtomicBool,
}

impl Durability {
    pub fn new(store: Arc<dyn Store>, sync: bool) -> Durability {
        Durability {
            store,
            sync,
            failure: Mutex::new(None),
            latencies: Mutex::new(Vec::new()),
            record_latency: AtomicBool::new(false),
        }
    }

    /// Starts or stops recording each group commit's write latency.
    pub fn record_latencies(&self, on: bool) {
        self.record_latency.store(on, Ordering::Relaxed);
    }

    /// The recorded latencies (microseconds, one per group), emptied.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The error that stopped the engine accepting work, if one has.
    pub fn failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fail(&self, error: StoreError) -> StoreError {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.get_or_insert(error).clone()
    }

    /// Writes `batch` (plus every limit scope that changed) unless the engine already failed.
    pub fn commit(&self, batch: &mut Batch, registry: &Registry) -> Result<(), StoreError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        // Scopes change rarely (an upgrade, a flag): look at them only when one has.
        let changed = if registry.take_scopes_dirty() {
            registry.scopes()
        } else {
            Vec::new()
        };
        for (portfolio, scope) in changed {
            if scope.take_dirty() {
                let record = crate::durable::records::ScopeRecord {
                    key: scope.key,
                    portfolio,
                    snapshot: scope.snapshot(),
                };
                batch.put(
                    Family::Registry,
                    registry_key(registry_kind::SCOPE, u64::from(scope.key)),
                    record.encode(),
                );
            }
        }
        let started = Instant::now();
        let result = self.store.write(batch, self.sync);
        if self.record_latency.load(Ordering::Relaxed) {
            let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            self.latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(micros);
        }
        result.map_err(|error| self.fail(error))
    }
}

/// Starts a committer thread; it stops when every sender of `jobs` is gone.
pub fn start_committer(
    name: String,
    durability: Arc<Durability>,
    registry: Arc<crate::core::Core>,
    jobs: Receiver<CommitJob>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut group = Batch::default();
            let mut waiting = Vec::new();
            while let Ok(first) = jobs.recv() {
                let mut job = first;
                loop {
                    group.append(&mut job.batch);
                    waiting.push(job.done);
                    if group.bytes() >= MAX_GROUP_BYTES {
                        break;
                    }
                    match jobs.try_recv() {
                        Ok(next) => job = next,
                        Err(_) => break,
                    }
                }
                let result = durability.commit(&mut group, &registry.registry);
                group.clear();
                for done in waiting.drain(..) {
                    done(result.clone());
                }
            }
        })
        .expect("spawning a committer thread")
}

/// A sender to a committer, for the worker that owns a shard.
pub type CommitQueue = Sender<CommitJob>;
