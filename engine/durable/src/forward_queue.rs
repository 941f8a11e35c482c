//! The durable queue of webhooks waiting for their tenant's callback: each stored (synced)
//! with the record that makes Meta's retries of it known, each tenant's in a key range of its
//! own and delivered in sequence order, and forgotten once delivered. The server's forwarder
//! does the HTTP; this module owns the disk.

use std::sync::atomic::{AtomicU64, Ordering};

use wagate_store::{Batch, Family, StoreError};

use crate::{SubmitError, Wagate};

/// One webhook for one tenant, and the identity that dedupes Meta's retries of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub tenant: String,
    pub body: Vec<u8>,
    pub identity: String,
}

/// A stored forward, by its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedForward {
    pub seq: u64,
    pub tenant: String,
    pub body: Vec<u8>,
}

/// Where the queue stands at start: the last sequence number used and how many wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTail {
    pub last_seq: Option<u64>,
    pub waiting: u64,
}

/// Keys of the queue as earlier versions wrote it: the sequence number alone, the tenant in
/// the value. Moved to the per-tenant layout when the queue is opened.
const LEGACY_FIRST: [u8; 1] = [0x00];
const LEGACY_END: [u8; 1] = [0x01];
/// Keys are `0x01`, the tenant's length (u16, big-endian), the tenant, the sequence number
/// (u64, big-endian): each tenant's forwards are a range of their own, in sequence order, so
/// one tenant's backlog never stands in front of another's.
const TENANT_KEYS: u8 = 0x01;
const ALL_KEYS: [u8; 1] = [0xff];
/// Past every sequence number of one tenant's prefix.
const PAST_SEQS: [u8; 9] = [0xff; 9];
/// Legacy records moved per write at open.
const MIGRATE_CHUNK: usize = 4_096;

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(3 + tenant.len() + 8);
    prefix.push(TENANT_KEYS);
    prefix.extend_from_slice(&(tenant.len().min(u16::MAX as usize) as u16).to_be_bytes());
    prefix.extend_from_slice(tenant.as_bytes());
    prefix
}

fn key_of(tenant: &str, seq: u64) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The tenant and sequence number of a per-tenant key.
fn split_key(key: &[u8]) -> Option<(&str, u64)> {
    if key.first() != Some(&TENANT_KEYS) {
        return None;
    }
    let length = u16::from_be_bytes(key.get(1..3)?.try_into().ok()?) as usize;
    let tenant = std::str::from_utf8(key.get(3..3 + length)?).ok()?;
    let seq = u64::from_be_bytes(key.get(3 + length..)?.try_into().ok()?);
    Some((tenant, seq))
}

/// A legacy record's value: the tenant (length-prefixed), then the body.
fn decode_legacy(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let length = u16::from_be_bytes(value.get(..2)?.try_into().ok()?) as usize;
    let tenant = std::str::from_utf8(value.get(2..2 + length)?).ok()?;
    Some((tenant.to_string(), value[2 + length..].to_vec()))
}

/// Puts one forward for `tenant` at `seq` into `batch` (a write of the caller's own: what the
/// tenant hears goes with what it tells of).
pub fn put_forward(batch: &mut Batch, seq: u64, tenant: &str, body: &[u8]) {
    batch.put(Family::Forward, key_of(tenant, seq), body);
}

impl Wagate {
    /// The queue's tail, read once at start, after moving records an earlier version wrote
    /// under its sequence number alone to their tenant's range (each chunk in one write: a
    /// record is in one place or the other, never lost, never twice).
    pub fn forward_queue_tail(&self) -> Result<QueueTail, StoreError> {
        self.move_legacy_forwards()?;
        let mut tail = QueueTail {
            last_seq: None,
            waiting: 0,
        };
        self.store
            .scan(Family::Forward, &[TENANT_KEYS], &ALL_KEYS, &mut |key, _| {
                if let Some((_, seq)) = split_key(key) {
                    tail.last_seq = tail.last_seq.max(Some(seq));
                }
                tail.waiting += 1;
                true
            })?;
        Ok(tail)
    }

    fn move_legacy_forwards(&self) -> Result<(), StoreError> {
        loop {
            let mut batch = Batch::default();
            let mut moved = 0;
            self.store.scan(
                Family::Forward,
                &LEGACY_FIRST,
                &LEGACY_END,
                &mut |key, value| {
                    if let (Ok(seq), Some((tenant, body))) =
                        (<[u8; 8]>::try_from(key), decode_legacy(value))
                    {
                        put_forward(&mut batch, u64::from_be_bytes(seq), &tenant, &body);
                    }
                    // Unreadable ones go too: nothing could ever deliver them.
                    batch.delete(Family::Forward, key);
                    moved += 1;
                    moved < MIGRATE_CHUNK
                },
            )?;
            if moved == 0 {
                return Ok(());
            }
            self.store.write(&batch, true)?;
            tracing::info!(moved, "forwards moved to their tenant's range");
        }
    }

    /// Stores the `forwards` not seen before under sequence numbers taken from `next_seq`,
    /// with the records that make them seen, in one synced write. Returns how many were new.
    pub fn enqueue_forwards(
        &self,
        forwards: Vec<Forward>,
        next_seq: &AtomicU64,
    ) -> Result<usize, SubmitError> {
        let mut batch = Batch::default();
        let mut added = 0;
        for forward in forwards {
            if self.seen(&forward.identity)? {
                continue;
            }
            let seq = next_seq.fetch_add(1, Ordering::Relaxed);
            put_forward(&mut batch, seq, &forward.tenant, &forward.body);
            self.remember_into(&forward.identity, &mut batch);
            added += 1;
        }
        if added > 0 {
            self.store.write(&batch, true)?;
        }
        Ok(added)
    }

    /// The tenants with forwards waiting, in key order (one seek per tenant, not a read of
    /// the queue).
    pub fn forward_tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut tenants = Vec::new();
        let mut from = vec![TENANT_KEYS];
        loop {
            let mut found = None;
            self.store
                .scan(Family::Forward, &from, &ALL_KEYS, &mut |key, _| {
                    found = split_key(key).map(|(tenant, _)| tenant.to_string());
                    // A key that does not split is skipped by the next one.
                    found.is_none()
                })?;
            let Some(tenant) = found else {
                return Ok(tenants);
            };
            from = tenant_prefix(&tenant);
            from.extend_from_slice(&PAST_SEQS);
            tenants.push(tenant);
        }
    }

    /// `tenant`'s oldest `limit` forwards.
    pub fn oldest_forwards_of(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<QueuedForward>, StoreError> {
        let prefix = tenant_prefix(tenant);
        let mut end = prefix.clone();
        end.extend_from_slice(&PAST_SEQS);
        let mut records = Vec::new();
        self.store
            .scan(Family::Forward, &prefix, &end, &mut |key, value| {
                if let Some((_, seq)) = split_key(key) {
                    records.push(QueuedForward {
                        seq,
                        tenant: tenant.to_string(),
                        body: value.to_vec(),
                    });
                }
                records.len() < limit
            })?;
        Ok(records)
    }

    /// Forgets delivered forwards, each by its tenant and sequence number. Unsynced: a
    /// delete lost to a crash means one more delivery, never none.
    pub fn forget_forwards<'a>(
        &self,
        delivered: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for (tenant, seq) in delivered {
            batch.delete(Family::Forward, key_of(tenant, seq));
        }
        self.store.write(&batch, false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_split_into_their_tenant_and_sequence() {
        let key = super::key_of("acme", 7);
        assert_eq!(super::split_key(&key), Some(("acme", 7)));
        assert_eq!(super::split_key(&7u64.to_be_bytes()), None, "legacy");
        assert_eq!(super::split_key(&key[..key.len() - 1]), None);
        // One tenant's keys all sort before the next tenant's, whatever their sequence.
        assert!(super::key_of("acme", u64::MAX) < super::key_of("acmf", 0));
        assert!(super::key_of("b", u64::MAX) < super::key_of("aa", 0));
    }

    #[test]
    fn legacy_records_decode() {
        let mut value = vec![0, 4];
        value.extend_from_slice(b"acme{\"x\":1}");
        assert_eq!(
            super::decode_legacy(&value),
            Some(("acme".to_string(), b"{\"x\":1}".to_vec()))
        );
        assert_eq!(super::decode_legacy(b"\x00\x09ab"), None);
    }
}
