//! The durable queue of webhooks waiting for their tenant's callback: each stored (synced)
//! with the record that makes Meta's retries of it known, delivered in sequence order, and
//! forgotten once delivered. The server's forwarder does the HTTP; this module owns the disk.

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

const ALL_SEQS: [u8; 9] = [0xff; 9];

fn encode(tenant: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + tenant.len() + body.len());
    out.extend_from_slice(&(tenant.len() as u16).to_be_bytes());
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(body);
    out
}

fn decode(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let length = u16::from_be_bytes(value.get(..2)?.try_into().ok()?) as usize;
    let tenant = std::str::from_utf8(value.get(2..2 + length)?).ok()?;
    Some((tenant.to_string(), value[2 + length..].to_vec()))
}

/// Puts one forward for `tenant` at `seq` into `batch` (a write of the caller's own: what the
/// tenant hears goes with what it tells of).
pub fn put_forward(batch: &mut Batch, seq: u64, tenant: &str, body: &[u8]) {
    batch.put(Family::Forward, seq.to_be_bytes(), encode(tenant, body));
}

impl Wagate {
    /// The queue's tail, read once at start.
    pub fn forward_queue_tail(&self) -> Result<QueueTail, StoreError> {
        let mut tail = QueueTail {
            last_seq: None,
            waiting: 0,
        };
        self.store
            .scan(Family::Forward, &[], &ALL_SEQS, &mut |key, _| {
                tail.last_seq = key.try_into().ok().map(u64::from_be_bytes);
                tail.waiting += 1;
                true
            })?;
        Ok(tail)
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

    /// The oldest `limit` forwards in the queue (a record that cannot be read is skipped).
    pub fn oldest_forwards(&self, limit: usize) -> Result<Vec<QueuedForward>, StoreError> {
        let mut records = Vec::new();
        self.store
            .scan(Family::Forward, &[], &ALL_SEQS, &mut |key, value| {
                if let (Ok(seq), Some((tenant, body))) = (key.try_into(), decode(value)) {
                    records.push(QueuedForward {
                        seq: u64::from_be_bytes(seq),
                        tenant,
                        body,
                    });
                }
                records.len() < limit
            })?;
        Ok(records)
    }

    /// Forgets delivered forwards. Unsynced: a delete lost to a crash means one more
    /// delivery, never none.
    pub fn forget_forwards(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for seq in seqs {
            batch.delete(Family::Forward, seq.to_be_bytes());
        }
        self.store.write(&batch, false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn records_round_trip() {
        let value = super::encode("acme", b"{\"x\":1}");
        assert_eq!(
            super::decode(&value),
            Some(("acme".to_string(), b"{\"x\":1}".to_vec()))
        );
        assert_eq!(super::decode(b"\x00\x09ab"), None);
    }
}
