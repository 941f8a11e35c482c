//! The RocksDB [`Store`]: one column family per [`Family`], each tuned for how it is used.
//!
//! - Ledger counters add up in place through an associative merge operator, so recording a
//!   price never reads.
//! - Idempotency values expire through a compaction filter that reads the expiry each value
//!   starts with; [`Store::purge_expired`] compacts that family alone, never the others.
//! - Point-read families (messages, idempotency, registry) carry bloom filters; contacts are
//!   read by range scans at start-up and need none.
//! - No compression: the values are small and mostly unique, and compression would cost CPU on
//!   the commit path.
//! - The write-ahead log is replayed with `TolerateCorruptedTailRecords`: a record torn at its
//!   end by a crash was never acknowledged (every acknowledgement waits for a synced write) and
//!   is dropped, but damage before the end stops the open with [`StoreError::DamagedLog`]
//!   rather than silently dropping the acknowledged sends after it (RocksDB's default,
//!   point-in-time recovery, would). [`RocksStore::salvage`] is the explicit way past it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::compaction_filter::Decision as FilterDecision;
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction, Env,
    IteratorMode, MemtableFactory, MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions,
    DB,
};

use crate::{add_counters, expires_at, Batch, Family, Op, Store, StoreError, COUNTERS_LEN};

pub struct RocksStore {
    db: DB,
    path: String,
    /// What the idempotency compaction filter takes as now (Unix seconds).
    filter_now: Arc<AtomicU64>,
}

fn merge_counters(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut sum = existing.map_or_else(|| vec![0u8; COUNTERS_LEN], <[u8]>::to_vec);
    for operand in operands.iter() {
        sum = add_counters(Some(&sum), operand);
    }
    Some(sum)
}

/// The write-ahead logs kept at most (see `open_with`); small in tests, to show it works.
const MAX_TOTAL_WAL_BYTES: u64 = if cfg!(test) { 4 << 20 } else { 256 << 20 };

fn family_options(family: Family, filter_now: &Arc<AtomicU64>) -> Options {
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::None);
    if matches!(
        family,
        Family::Contacts | Family::Messages | Family::Outbox | Family::Deferred
    ) {
        // The hot families: large memtables so that flushes are rare under load, and up to
        // 8 flushed files or 1 GiB before they are compacted. A burst over a number's
        // throughput queues its sends in `deferred` until released (then deleted):
        // compacting at RocksDB's defaults (4 files or 256 MiB) rewrote all of that family
        // every few flushes, a quarter of the machine's CPU during a bulk run.
        options.set_write_buffer_size(128 << 20);
        options.set_max_write_buffer_number(4);
        options.set_level_zero_file_num_compaction_trigger(8);
        options.set_max_bytes_for_level_base(1 << 30);
    }
    if family == Family::Contacts {
        // Contacts arrive in random key order and are never read by key, only scanned at
        // start-up: a vector memtable appends (sorted once, at flush) where a skip list would
        // spend most of the commit path finding its place. Small, so the sort stays in cache.
        options.set_write_buffer_size(16 << 20);
        options.set_memtable_factory(MemtableFactory::Vector);
    }
    if matches!(
        family,
        Family::Messages
            | Family::Outbox
            | Family::Idempotency
            | Family::Registry
            | Family::UpstreamIds
            | Family::Deferred
    ) {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
    }
    match family {
        Family::Ledger | Family::Campaigns => {
            options.set_merge_operator_associative("add_counters", merge_counters)
        }
        Family::Idempotency => {
            let now = filter_now.clone();
            options.set_compaction_filter(
                "expired_idempotency",
                move |_level, _key, value: &[u8]| match expires_at(value) {
                    Some(at) if at <= now.load(Ordering::Relaxed) => FilterDecision::Remove,
                    _ => FilterDecision::Keep,
                },
            );
        }
        _ => {}
    }
    options
}

/// RocksDB's background threads at the lowest CPU priority (nice 19). A flush of a full
/// 128 MiB memtable takes a core for about a tenth of a second; at the default priority it
/// took it from the threads answering sends, and every send in flight waited that long. Lowered,
/// flushes and compactions run in the time the machine has left (the memtables in reserve hold
/// the writes of the seconds they wait).
fn background_env(path: &str) -> Result<Env, StoreError> {
    let mut env = Env::new().map_err(|e| StoreError::Open {
        path: path.to_string(),
        reason: e.into_string(),
    })?;
    env.lower_high_priority_thread_pool_cpu_priority();
    env.lower_thread_pool_cpu_priority();
    Ok(env)
}

/// The write-ahead log files in `path` and their sizes.
fn wal_files(path: &Path) -> Vec<(String, u64)> {
    let mut logs: Vec<(String, u64)> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| {
            let size = entry.metadata().map_or(0, |m| m.len());
            (entry.path().display().to_string(), size)
        })
        .collect();
    logs.sort();
    logs
}

fn classify(error: rocksdb::Error, path: &str) -> StoreError {
    let text = error.into_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("no space left") {
        StoreError::NoSpace(text)
    } else if lower.contains("lock")
        && (lower.contains("temporarily unavailable")
            || lower.contains("no locks")
            || lower.contains("lock hold"))
    {
        StoreError::Locked {
            path: path.to_string(),
        }
    } else if lower.contains("corrupt") {
        StoreError::Corrupt(text)
    } else {
        StoreError::Io(text)
    }
}

/// What [`RocksStore::salvage`] kept and what RocksDB said it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// Write-ahead log files found, with their sizes in bytes, before the salvage.
    pub logs: Vec<(String, u64)>,
    /// RocksDB's own log lines about the records it skipped.
    pub dropped: Vec<String>,
    /// Records kept per family, after the salvage.
    pub kept: Vec<(&'static str, u64)>,
}

impl RocksStore {
    /// A consistent copy of the store in `dir` (which must not exist): RocksDB's checkpoint,
    /// memtables flushed, files hard-linked where they can be. What cluster mode snapshots.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(|e| classify(e, &self.path))
    }

    /// Opens (or creates) the store in `path`, refusing a write-ahead log damaged before its
    /// end ([`StoreError::DamagedLog`]).
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        Self::open_with(path, DBRecoveryMode::TolerateCorruptedTailRecords)
    }

    /// Opens a store whose write-ahead log is damaged, skipping every record that cannot be
    /// read (what RocksDB dropped is in its LOG, reported back), makes what was kept durable
    /// in table files so the damaged log is no longer needed, and counts what is left. For an
    /// operator, on a copy of the directory: what the skipped records held is lost.
    pub fn salvage(path: &Path) -> Result<SalvageReport, StoreError> {
        let logs = wal_files(path);
        let log_before = std::fs::read_to_string(path.join("LOG")).unwrap_or_default();
        let store = Self::open_with(path, DBRecoveryMode::SkipAnyCorruptedRecord)?;
        for family in Family::ALL {
            store
                .db
                .flush_cf(store.family(family))
                .map_err(|e| classify(e, &store.path))?;
        }
        let mut kept = Vec::new();
        for family in Family::ALL {
            let mut count = 0u64;
            store.scan(family, &[], &[0xff; 64], &mut |_, _| {
                count += 1;
                true
            })?;
            kept.push((family.name(), count));
        }
        drop(store);
        // RocksDB rewrites LOG at each open (the old one is kept as LOG.old.*): what this open
        // said of the records it skipped is in the new one.
        let log_after = std::fs::read_to_string(path.join("LOG")).unwrap_or_default();
        let said = if log_after.starts_with(&log_before) {
            &log_after[log_before.len()..]
        } else {
            &log_after[..]
        };
        let dropped = said
            .lines()
            .filter(|line| {
                let line = line.to_ascii_lowercase();
                line.contains("corrupt") || line.contains("dropping")
            })
            .map(str::to_string)
            .collect();
        Ok(SalvageReport {
            logs,
            dropped,
            kept,
        })
    }

    fn open_with(path: &Path, recovery: DBRecoveryMode) -> Result<RocksStore, StoreError> {
        let shown = path.display().to_string();
        std::fs::create_dir_all(path).map_err(|e| StoreError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let filter_now = Arc::new(AtomicU64::new(0));
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        options.set_env(&background_env(&shown)?);
        options.set_bytes_per_sync(1 << 20);
        // Required by the vector memtable; group commit already makes writes few and large.
        options.set_allow_concurrent_memtable_write(false);
        options.set_wal_recovery_mode(recovery);
        options.set_paranoid_checks(true);
        // A log file is kept until every family with writes in it has flushed them, and the
        // quiet families (registry, ledger, campaigns...) fill their memtables in days: the
        // logs of a whole day's traffic stayed (1.2 GB after ten million consents and a
        // million sends) and a restart replayed them all (3.5 of its 6.9 s). Past this size
        // RocksDB flushes the families holding the oldest log, so a restart (or a recovery
        // after a crash) replays at most this much.
        options.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        let families = Family::ALL
            .iter()
            .map(|f| ColumnFamilyDescriptor::new(f.name(), family_options(*f, &filter_now)));
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|e| {
            match classify(e, &shown) {
                StoreError::Io(reason) => StoreError::Open {
                    path: shown.clone(),
                    reason,
                },
                StoreError::Corrupt(detail) => StoreError::DamagedLog {
                    path: shown.clone(),
                    detail,
                },
                other => other,
            }
        })?;
        Ok(RocksStore {
            db,
            path: shown,
            filter_now,
        })
    }

    fn family(&self, family: Family) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(family.name())
            .expect("every family is created at open")
    }
}

impl Store for RocksStore {
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
        // Sized once: a group commit is megabytes, and growing it would copy it several times.
        let mut writes = WriteBatch::with_capacity_bytes(batch.bytes() + batch.len() * 16 + 64);
        for op in batch.ops() {
            match op {
                Op::Put { family, key, value } => writes.put_cf(self.family(family), key, value),
                Op::Delete { family, key } => writes.delete_cf(self.family(family), key),
                Op::Add { family, key, delta } => writes.merge_cf(self.family(family), key, delta),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db
            .write_opt(writes, &options)
            .map_err(|e| classify(e, &self.path))
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.family(family), key)
            .map_err(|e| classify(e, &self.path))
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(end.to_vec());
        options.fill_cache(false);
        let entries = self.db.iterator_cf_opt(
            self.family(family),
            options,
            IteratorMode::From(start, Direction::Forward),
        );
        for entry in entries {
            let (key, value) = entry.map_err(|e| classify(e, &self.path))?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn estimate_keys(&self, family: Family) -> Option<u64> {
        self.db
            .property_int_value_cf(self.family(family), "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
    }

    fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        self.filter_now.store(now, Ordering::Relaxed);
        let family = self.family(Family::Idempotency);
        self.db
            .flush_cf(family)
            .map_err(|e| classify(e, &self.path))?;
        self.db
            .compact_range_cf(family, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        for family in Family::ALL {
            self.db
                .flush_cf(self.family(family))
                .map_err(|e| classify(e, &self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_conforms() {
        let dir = tempdir();
        crate::conformance::check(&RocksStore::open(&dir).unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_as_locked() {
        let dir = tempdir();
        let _first = RocksStore::open(&dir).unwrap();
        let second = RocksStore::open(&dir).err().expect("second open must fail");
        assert!(matches!(second, StoreError::Locked { .. }), "{second:?}");
        assert!(second.to_string().contains("locked by another process"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempdir();
        {
            let store = RocksStore::open(&dir).unwrap();
            let mut batch = Batch::default();
            batch.put(Family::Contacts, b"k", b"v");
            batch.add(Family::Ledger, b"l", 2, 9);
            store.write(&batch, true).unwrap();
        }
        let store = RocksStore::open(&dir).unwrap();
        assert_eq!(
            store.get(Family::Contacts, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            store.get(Family::Ledger, b"l").unwrap().unwrap()[..8],
            2u64.to_le_bytes()
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_path_that_is_a_file_cannot_be_opened() {
        let dir = tempdir();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-a-directory");
        std::fs::write(&file, b"x").unwrap();
        let error = RocksStore::open(&file)
            .err()
            .expect("a file is not a data directory");
        assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
        std::fs::remove_dir_all(dir).ok();
    }

    /// The bytes of the write-ahead logs in `dir`.
    fn log_bytes(dir: &Path) -> u64 {
        wal_files(dir).iter().map(|(_, size)| size).sum()
    }

    #[test]
    fn quiet_families_do_not_keep_the_write_ahead_logs_of_busy_ones() {
        let dir = tempdir();
        let store = RocksStore::open(&dir).unwrap();
        let mut batch = Batch::default();
        batch.put(Family::Registry, b"number", b"once");
        store.write(&batch, true).unwrap();
        // 24 MiB of messages: far below their memtables' size, six times the logs' bound.
        let value = vec![7u8; 1 << 20];
        for i in 0..24u32 {
            let mut batch = Batch::default();
            batch.put(Family::Messages, i.to_be_bytes(), &value);
            store.write(&batch, true).unwrap();
        }
        // The flushes the bound asked for run in the background: waited for (not asked for
        // here), with a timeout. All 24 MiB were kept before.
        let mut background = rocksdb::WaitForCompactOptions::default();
        background.set_timeout(30_000_000);
        store.db.wait_for_compact(&background).unwrap();
        let logs = log_bytes(&dir);
        assert!(
            logs <= 3 * MAX_TOTAL_WAL_BYTES,
            "{logs} bytes of logs kept (bound {MAX_TOTAL_WAL_BYTES})"
        );
        assert_eq!(
            store.get(Family::Registry, b"number").unwrap().as_deref(),
            Some(&b"once"[..])
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_flush_leaves_no_log_to_replay() {
        let dir = tempdir();
        let store = RocksStore::open(&dir).unwrap();
        let value = vec![7u8; 1 << 20];
        let mut batch = Batch::default();
        batch.put(Family::Contacts, b"person", &value);
        batch.put(Family::Registry, b"number", b"once");
        store.write(&batch, true).unwrap();
        assert!(log_bytes(&dir) > 1 << 20, "written to the log first");
        store.flush().unwrap();
        // Closing waits for RocksDB's background work, the flushed log's removal included.
        drop(store);
        let logs = log_bytes(&dir);
        assert!(logs < 1 << 10, "{logs} bytes of log after the flush");
        let store = RocksStore::open(&dir).unwrap();
        assert_eq!(store.get(Family::Contacts, b"person").unwrap(), Some(value));
        assert_eq!(
            store.get(Family::Registry, b"number").unwrap().as_deref(),
            Some(&b"once"[..])
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn flushes_run_at_the_lowest_cpu_priority() {
        let dir = tempdir();
        let store = RocksStore::open(&dir).unwrap();
        let mut batch = Batch::default();
        batch.put(Family::Messages, b"k", b"v");
        store.write(&batch, true).unwrap();
        let family = store.db.cf_handle(Family::Messages.name()).unwrap();
        // Returns once the flush has run on a background thread.
        store.db.flush_cf(&family).unwrap();
        let flushers: Vec<i64> = thread_nices()
            .into_iter()
            .filter(|(name, _)| name.starts_with("rocksdb:high"))
            .map(|(_, nice)| nice)
            .collect();
        assert!(
            flushers.contains(&19),
            "a flush thread at nice 19: {flushers:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    /// The name and nice value of each of this process's threads.
    fn thread_nices() -> Vec<(String, i64)> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let task = task.ok()?.path();
                let name = std::fs::read_to_string(task.join("comm")).ok()?;
                let stat = std::fs::read_to_string(task.join("stat")).ok()?;
                // Fields after the parenthesised name start at the third (state); nice is the 19th.
                let after_name = &stat[stat.rfind(')')? + 1..];
                let nice = after_name.split_whitespace().nth(16)?.parse().ok()?;
                Some((name.trim().to_string(), nice))
            })
            .collect()
    }

    fn tempdir() -> std::path::PathBuf {
        use std::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "wagate-rocks-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}
