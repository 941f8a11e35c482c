//! # wagate-store
//!
//! Durable storage behind a trait: column families of ordered byte keys, atomic batches that
//! may be synced to the write-ahead log, counters that add up in place, and values that expire.
//!
//! The engine writes through [`Store`], with the key encodings of [`keys`]. [`MemoryStore`]
//! serves tests; `RocksStore` (feature `rocksdb`, so that this crate alone links no RocksDB) is
//! the product. Both pass [`conformance::check`], which any other implementation can run too.

mod batch_wire;
pub mod conformance;
pub mod keys;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

/// Column families, one per access pattern (see docs/ARCHITECTURE.md, "On disk").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Format version and other facts about the data directory.
    Meta,
    /// Numbers, limit scopes and templates: small, rewritten whole on change.
    Registry,
    /// Contact records by (register, person, scope): scanned in ranges at start-up.
    Contacts,
    /// Settled messages (sent or failed for good) by id, with what the upstream said.
    Messages,
    /// Messages not yet settled with the upstream, whole, by id: what start-up reads to resume.
    Outbox,
    /// Idempotency records by (number, key); each value starts with its expiry.
    Idempotency,
    /// Price ledger counters by (number, day, category), added to in place.
    Ledger,
    /// The upstream's id (Meta's wamid) of each sent message, to wagate's message id.
    UpstreamIds,
    /// Sends the caller asked to queue when the rules made them wait, by (due time, id).
    Deferred,
    /// Webhooks waiting to be delivered to tenants' callbacks, by sequence number.
    Forward,
    /// Every consent event, append-only, by (business, person, time, sequence).
    ConsentHistory,
    /// What operators did that the law asks to be shown (erasures), by (time, sequence).
    Audit,
    /// Campaigns: each one's record, its audience by (campaign, position), and its delivery
    /// counters, added to in place.
    Campaigns,
    /// Groups of the Groups API as Meta last said (and creations awaiting Meta's word), by id,
    /// and the statuses of group messages per participant.
    Groups,
}
impl Family {
    pub const ALL: [Family; 14] = [
        Family::Meta,
        Family::Registry,
        Family::Contacts,
        Family::Messages,
        Family::Outbox,
        Family::Idempotency,
        Family::Ledger,
        Family::UpstreamIds,
        Family::Deferred,
        Family::Forward,
        Family::ConsentHistory,
        Family::Audit,
        Family::Campaigns,
        Family::Groups,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Meta => "meta",
            Family::Registry => "registry",
            Family::Contacts => "contacts",
            Family::Messages => "messages",
            Family::Outbox => "outbox",
            Family::Idempotency => "idempotency",
            Family::Ledger => "ledger",
            Family::UpstreamIds => "upstream_ids",
            Family::Deferred => "deferred",
            Family::Forward => "forward",
            Family::ConsentHistory => "consent_history",
            Family::Audit => "audit",
            Family::Campaigns => "campaigns",
            Family::Groups => "groups",
        }
    }
}

/// Two little-endian `u64` counters (ledger: messages, micro-dollars) that writes add to.
pub const COUNTERS_LEN: usize = 16;

pub fn add_counters(existing: Option<&[u8]>, delta: &[u8]) -> Vec<u8> {
    let read = |bytes: Option<&[u8]>, i: usize| {
        bytes.filter(|b| b.len() == COUNTERS_LEN).map_or(0, |b| {
            u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        })
    };
    let mut out = Vec::with_capacity(COUNTERS_LEN);
    for i in 0..2 {
        out.extend_from_slice(
            &read(existing, i)
                .wrapping_add(read(Some(delta), i))
                .to_le_bytes(),
        );
    }
    out
}

/// In [`Family::Idempotency`] every value begins with its expiry, Unix seconds, big-endian.
pub fn expires_at(value: &[u8]) -> Option<u64> {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// One write of a [`Batch`], borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Put {
        family: Family,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        family: Family,
        key: &'a [u8],
    },
    /// Adds two `u64` counters to the value at `key` (absent counts as zero).
    Add {
        family: Family,
        key: &'a [u8],
        delta: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
    Add,
}

/// Where one write's key and value lie in the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    family: Family,
    kind: Kind,
    key: (u32, u32),
    value: (u32, u32),
}

/// Writes applied together or not at all. Keys and values live in one buffer, so building a
/// batch of thousands of writes allocates a handful of times, not thousands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    entries: Vec<Entry>,
}

impl Batch {
    /// An empty batch with room for `writes` writes of `bytes` bytes of keys and values in all.
    pub fn with_capacity(bytes: usize, writes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(writes),
        }
    }

    fn push(&mut self, family: Family, kind: Kind, key: &[u8], value: &[u8]) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(key);
        let middle = self.data.len() as u32;
        self.data.extend_from_slice(value);
        let end = self.data.len() as u32;
        self.entries.push(Entry {
            family,
            kind,
            key: (start, middle),
            value: (middle, end),
        });
    }

    pub fn put(&mut self, family: Family, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(family, Kind::Put, key.as_ref(), value.as_ref());
    }

    /// Puts a value that `encode` writes straight into the batch's buffer.
    pub fn put_encoded(&mut self, family: Family, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(key);
        let middle = self.data.len() as u32;
        encode(&mut self.data);
        let end = self.data.len() as u32;
        self.entries.push(Entry {
            family,
            kind: Kind::Put,
            key: (start, middle),
            value: (middle, end),
        });
    }

    pub fn delete(&mut self, family: Family, key: impl AsRef<[u8]>) {
        self.push(family, Kind::Delete, key.as_ref(), &[]);
    }

    pub fn add(&mut self, family: Family, key: impl AsRef<[u8]>, first: u64, second: u64) {
        let mut delta = [0u8; COUNTERS_LEN];
        delta[..8].copy_from_slice(&first.to_le_bytes());
        delta[8..].copy_from_slice(&second.to_le_bytes());
        self.push(family, Kind::Add, key.as_ref(), &delta);
    }

    /// Moves `other`'s writes to the end of this batch.
    pub fn append(&mut self, other: &mut Batch) {
        let shift = self.data.len() as u32;
        self.data.append(&mut other.data);
        self.entries
            .extend(other.entries.drain(..).map(|mut entry| {
                entry.key = (entry.key.0 + shift, entry.key.1 + shift);
                entry.value = (entry.value.0 + shift, entry.value.1 + shift);
                entry
            }));
    }

    /// The writes, in order.
    pub fn ops(&self) -> impl Iterator<Item = Op<'_>> {
        self.entries.iter().map(|entry| {
            let key = &self.data[entry.key.0 as usize..entry.key.1 as usize];
            let value = &self.data[entry.value.0 as usize..entry.value.1 as usize];
            match entry.kind {
                Kind::Put => Op::Put {
                    family: entry.family,
                    key,
                    value,
                },
                Kind::Delete => Op::Delete {
                    family: entry.family,
                    key,
                },
                Kind::Add => Op::Add {
                    family: entry.family,
                    key,
                    delta: value,
                },
            }
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values: what group commit limits a batch by.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the data directory {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("the data directory {path} is locked by another process (is another wagate running?)")]
    Locked { path: String },
    #[error("the disk is full: {0}")]
    NoSpace(String),
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The write-ahead log is damaged before its end: starting over it would drop acknowledged
    /// work without a word, so the store does not open.
    #[error(
        "the write-ahead log in {path} is damaged ({detail}); wagate did not start, because \
         the acknowledged sends after the damage would be lost without a word. Copy the \
         directory, then run `wagate recover --data-dir {path}` to keep what is intact and \
         see what was lost"
    )]
    DamagedLog { path: String, detail: String },
    /// The engine stopped (shutdown) before this work was written.
    #[error("wagate stopped before the work was written")]
    Stopped,
}

/// Ordered key-value storage in column families.
pub trait Store: Send + Sync {
    /// Applies `batch` atomically; with `sync`, returns only once it is in the synced log.
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StoreError>;

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the keys in `[start, end)` in order, until `visit` returns false.
    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// Drops expired values of [`Family::Idempotency`] without reading the rest of the store
    /// (RocksDB: a compaction filter over that family only). `now` is Unix seconds.
    fn purge_expired(&self, now: u64) -> Result<(), StoreError>;

    /// Roughly how many keys `family` holds, if the store can say cheaply (for pre-sizing).
    fn estimate_keys(&self, _family: Family) -> Option<u64> {
        None
    }

    /// Makes everything written durable without its log (RocksDB: flushes every memtable), so
    /// that the next open has no log to replay. For a clean stop.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
