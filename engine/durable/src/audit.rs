//! The audit log: what operators did that the law asks a business to be able to show (an
//! erasure: when, by whom, of which business, what it removed), append-only in
//! [`Family::Audit`] by (time, sequence). An entry names no person: an erased person appears
//! as their salted hash (see `suppression`).

use serde_json::Value;
use wagate_rules::clock::Timestamp;
use wagate_store::{Batch, Family, Store, StoreError};

use crate::consent_history::sequence;

/// Puts `entry` (a JSON object; `at` is added) in the log, in `batch`.
pub(crate) fn write(batch: &mut Batch, at: Timestamp, mut entry: Value) {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&at.0.to_be_bytes());
    key[8..].copy_from_slice(&sequence().to_be_bytes());
    if let Some(object) = entry.as_object_mut() {
        object.insert("at".into(), Value::from(at.unix_secs()));
    }
    batch.put(Family::Audit, key, entry.to_string());
}

/// The entries from `since` (Unix seconds) on, oldest first, at most `limit`.
pub(crate) fn read(store: &dyn Store, since: u64, limit: usize) -> Result<Vec<Value>, StoreError> {
    let start = Timestamp::from_unix_secs(since).0.to_be_bytes();
    let mut entries = Vec::new();
    store.scan(Family::Audit, &start, &[0xff; 17], &mut |_, value| {
        if let Ok(entry) = serde_json::from_slice(value) {
            entries.push(entry);
        }
        entries.len() < limit
    })?;
    Ok(entries)
}
