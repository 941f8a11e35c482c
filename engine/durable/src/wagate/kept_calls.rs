//! Calls counted against Meta's moving-window limits (registration calls per number, edits of
//! an approved template), kept in the registry family so that a restart does not forget them:
//! one record per limit and key, the calls' Unix seconds. The server counts; this keeps.

use wagate_store::keys::{registry_kind, Reader, Writer};
use wagate_store::{Batch, Family, StoreError};

use super::Wagate;
use crate::family_scan::everything;

fn key(limit: u8, id: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = registry_kind::CALLS;
    key[1] = limit;
    key[2..].copy_from_slice(&id.to_be_bytes());
    key
}

impl Wagate {
    /// Keeps the calls (Unix seconds) of `id` under `limit`; none forgets it. Not synced: a
    /// crash may forget the last call, and then Meta's own refusal stands for it.
    pub fn keep_calls(&self, limit: u8, id: u64, calls: &[u64]) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        if calls.is_empty() {
            batch.delete(Family::Registry, key(limit, id));
        } else {
            let mut writer = Writer::default();
            for at in calls {
                writer.u64(*at);
            }
            batch.put(Family::Registry, key(limit, id), writer.bytes);
        }
        self.store.write(&batch, false)
    }

    /// Every id's calls kept under `limit`.
    pub fn kept_calls(&self, limit: u8) -> Result<Vec<(u64, Vec<u64>)>, StoreError> {
        let mut kept = Vec::new();
        everything(self.store.as_ref(), Family::Registry, |stored, value| {
            if stored.len() == 10 && stored[0] == registry_kind::CALLS && stored[1] == limit {
                let id = u64::from_be_bytes(stored[2..].try_into().unwrap_or_default());
                let mut reader = Reader::new(value);
                let calls: Vec<u64> = std::iter::from_fn(|| reader.u64()).collect();
                kept.push((id, calls));
            }
        })?;
        Ok(kept)
    }
}
