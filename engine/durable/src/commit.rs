//! Group commit: each shard worker's [`Committer`] writes a group's batch as one synced write
//! and only then completes every waiting caller. A small group (single requests) is written on
//! the worker's own thread when nothing of its is queued: handing it over would cost a wake-up
//! on each side and, on a busy machine, a wait for the committer to be scheduled, while the
//! decisions it would overlap take less than the write. A large group (bulk) goes to the
//! committer thread, which drains whatever else is queued (up to [`MAX_GROUP_BYTES`]) into one
//! write while the worker decides the next group. RocksDB merges concurrent synced writes (of
//! both shards, from workers or committers) into one log write, so one fsync serves them all.
//! A worker takes a small group no sooner than the commit interval after its last commit
//! ([`wait_before_group`]), so that at moderate load single sends share synced writes too.
//!
//! A write that fails (disk full, I/O error) is fatal for new work: the engine's memory has
//! moved past what the disk holds, so every later commit is refused with the first error and
//! the caller sees it; restarting recovers from what was synced.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::metrics::{commit_records_histogram, commit_seconds_histogram};
use prometheus_client::metrics::histogram::Histogram;
use wagate_rules::registry::Registry;
use wagate_rules::shard_context::Core;
use wagate_store::keys::{registry_key, registry_kind};
use wagate_store::{Batch, Family, Store, StoreError};

/// What the committer thread drains into one write at most.
pub(crate) const MAX_GROUP_BYTES: usize = 8 << 20;
/// Groups of at most this many commands are written on the worker's thread when its
/// committer has nothing queued. Single requests make groups of tens to a few hundred; a bulk
/// request alone is 1,000 messages split over the shards.
pub(crate) const INLINE_COMMANDS: usize = 256;

/// Groups of fewer commands than this wait out the commit interval (see
/// [`wait_before_group`]); larger ones (bulk) are worth a synced write of their own.
pub(crate) const PACED_COMMANDS: usize = 64;

/// How long a shard waits before taking a group whose first part has `commands` commands, its
/// last group commit having ended `since_last` ago: the rest of `interval`, when the group is
/// small. At moderate load single sends arrive one by one, and committing each as it comes
/// makes synced writes back to back, each shared by a handful of sends and each waking the
/// threads on their paths; waiting out the interval lets the sends that arrive meanwhile share
/// one (at half the peak: half the synced writes and a fifth less server CPU per message,
/// docs/benchmarks.md).
pub(crate) fn wait_before_group(
    since_last: Option<Duration>,
    interval: Duration,
    commands: usize,
) -> Option<Duration> {
    let since_last = since_last?;
    (commands < PACED_COMMANDS && since_last < interval).then(|| interval - since_last)
}

/// One shard batch's writes and what to do once they are durable (or not).
pub(crate) struct CommitJob {
    pub batch: Batch,
    pub done: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

/// The shared state of every committer: the store and the first failure.
pub struct Durability {
    pub store: Arc<dyn Store>,
    pub sync: bool,
    /// See [`wait_before_group`].
    pub commit_interval: Duration,
    failure: Mutex<Option<StoreError>>,
    /// Commit latency in microseconds, one sample per group, while recording is on.
    latencies: Mutex<Vec<u32>>,
    record_latency: AtomicBool,
    /// Every group commit's latency and size, for `/metrics`.
    pub commit_seconds: Histogram,
    pub commit_records: Histogram,
}

impl Durability {
    pub fn new(store: Arc<dyn Store>, sync: bool, commit_interval: Duration) -> Durability {
        Durability {
            store,
            sync,
            commit_interval,
            failure: Mutex::new(None),
            latencies: Mutex::new(Vec::new()),
            record_latency: AtomicBool::new(false),
            commit_seconds: commit_seconds_histogram(),
            commit_records: commit_records_histogram(),
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
                let record = crate::records::ScopeRecord {
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
        let took = started.elapsed();
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_records.observe(batch.len() as f64);
        if self.record_latency.load(Ordering::Relaxed) {
            let micros = took.as_micros().min(u128::from(u32::MAX)) as u32;
            self.latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(micros);
        }
        result.map_err(|error| self.fail(error))
    }
}

/// A shard worker's way to durability: its group's writes, on its own thread or through its
/// committer thread, always in the order the worker made them.
pub(crate) struct Committer {
    durability: Arc<Durability>,
    core: Arc<Core>,
    jobs: Sender<CommitJob>,
    /// Jobs handed to the committer thread and not yet written.
    queued: Arc<AtomicUsize>,
}

impl Committer {
    /// Starts the committer thread (named `name`); it stops when the `Committer` is dropped.
    pub(crate) fn start(
        name: String,
        durability: Arc<Durability>,
        core: Arc<Core>,
    ) -> (Committer, JoinHandle<()>) {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let thread = start_committer_thread(
            name,
            durability.clone(),
            core.clone(),
            queue,
            queued.clone(),
        );
        let committer = Committer {
            durability,
            core,
            jobs,
            queued,
        };
        (committer, thread)
    }

    /// Writes `job` (a group of `commands`) and completes it once durable, here if the group is
    /// small and nothing is queued (so no earlier write of this worker can land after it),
    /// otherwise on the committer thread.
    pub(crate) fn commit(&self, mut job: CommitJob, commands: usize) {
        if commands <= INLINE_COMMANDS && self.queued.load(Ordering::Acquire) == 0 {
            let result = self.durability.commit(&mut job.batch, &self.core.registry);
            (job.done)(result);
            return;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(job) {
            // Only a committer thread that died leaves nobody to write: say so, write nothing.
            self.queued.fetch_sub(1, Ordering::AcqRel);
            (job.done)(Err(StoreError::Stopped));
        }
    }
}

/// The committer thread; it stops when every sender of `jobs` is gone.
fn start_committer_thread(
    name: String,
    durability: Arc<Durability>,
    core: Arc<Core>,
    jobs: Receiver<CommitJob>,
    queued: Arc<AtomicUsize>,
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
                let result = durability.commit(&mut group, &core.registry);
                group.clear();
                // Written: a later group of the worker's may now be written on its thread.
                queued.fetch_sub(waiting.len(), Ordering::AcqRel);
                for done in waiting.drain(..) {
                    done(result.clone());
                }
            }
        })
        .expect("spawning a committer thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::config::EngineConfig;
    use wagate_store::MemoryStore;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_small_group_waits_out_the_rest_of_the_interval_since_the_last_commit() {
        let since = Duration::from_micros(300);
        assert_eq!(
            wait_before_group(Some(since), MS, 1),
            Some(Duration::from_micros(700))
        );
        assert_eq!(
            wait_before_group(Some(since), MS, PACED_COMMANDS - 1),
            Some(Duration::from_micros(700))
        );
    }

    #[test]
    fn nothing_waits_when_the_interval_has_passed_or_nothing_was_committed_or_the_group_is_large() {
        assert_eq!(wait_before_group(Some(MS), MS, 1), None, "interval passed");
        assert_eq!(wait_before_group(Some(2 * MS), MS, 1), None, "long passed");
        assert_eq!(wait_before_group(None, MS, 1), None, "first group");
        assert_eq!(
            wait_before_group(Some(Duration::ZERO), MS, PACED_COMMANDS),
            None,
            "a bulk-sized group"
        );
        assert_eq!(
            wait_before_group(Some(Duration::ZERO), Duration::ZERO, 1),
            None,
            "interval 0: at once"
        );
    }

    /// A memory store whose first write waits until the test lets it go (2 s at most).
    struct GatedStore {
        inner: MemoryStore,
        gate: Mutex<Option<crossbeam_channel::Receiver<()>>>,
    }

    impl Store for GatedStore {
        fn write(&self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
            let gate = self.gate.lock().expect("gate").take();
            if let Some(gate) = gate {
                // Bounded, so that a write wrongly made on the test's own thread fails the
                // test instead of hanging it.
                let _ = gate.recv_timeout(std::time::Duration::from_secs(2));
            }
            self.inner.write(batch, sync)
        }
        fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(family, key)
        }
        fn scan(
            &self,
            family: Family,
            start: &[u8],
            end: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.inner.scan(family, start, end, visit)
        }
        fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
            self.inner.purge_expired(now)
        }
    }

    fn job(value: &[u8], done: crossbeam_channel::Sender<Vec<u8>>) -> CommitJob {
        let mut batch = Batch::default();
        batch.put(Family::Outbox, b"k", value);
        let value = value.to_vec();
        CommitJob {
            batch,
            done: Box::new(move |result| {
                result.expect("written");
                let _ = done.send(value);
            }),
        }
    }

    #[test]
    fn a_small_group_waits_behind_a_large_one_still_queued_and_lands_after_it() {
        let (open, gate) = crossbeam_channel::bounded(1);
        let store = Arc::new(GatedStore {
            inner: MemoryStore::new(),
            gate: Mutex::new(Some(gate)),
        });
        let durability = Arc::new(Durability::new(store.clone(), true, Duration::ZERO));
        let core = Arc::new(Core::new(&EngineConfig::default()).expect("core"));
        let (committer, thread) = Committer::start("test-commit".into(), durability, core);
        let (done, completed) = crossbeam_channel::unbounded();

        committer.commit(job(b"large", done.clone()), INLINE_COMMANDS + 1);
        // The large group's write is held at the gate, so it is still queued: a small group
        // written here now would land first and be overwritten by the older one.
        committer.commit(job(b"small", done.clone()), 1);
        assert!(
            completed.try_recv().is_err(),
            "nothing written past the gate"
        );
        open.send(()).expect("gate");
        assert_eq!(completed.recv().expect("large"), b"large");
        assert_eq!(completed.recv().expect("small"), b"small");
        assert_eq!(
            store.get(Family::Outbox, b"k").expect("read"),
            Some(b"small".to_vec()),
            "the later group's write is the one on disk"
        );

        // Nothing queued now: a small group is written on the caller's thread, complete on return.
        committer.commit(job(b"inline", done), 1);
        assert_eq!(completed.try_recv().expect("written inline"), b"inline");
        drop(committer);
        thread.join().expect("committer thread");
    }
}
