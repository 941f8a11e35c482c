//! An in-memory [`Store`] for unit tests and simulations: a sorted map per family.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{add_counters, expires_at, Batch, Family, Op, Store, StoreError};

/// Every family's entries in one ordered map, keyed by (family, key).
type Entries = BTreeMap<(Family, Vec<u8>), Vec<u8>>;

#[derive(Debug, Default)]
pub struct MemoryStore {
    families: Mutex<Entries>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Writes apply whole under the lock, so a poisoned map is still consistent.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn write(&self, batch: &Batch, _sync: bool) -> Result<(), StoreError> {
        let mut map = self.lock();
        for op in batch.ops() {
            match op {
                Op::Put { family, key, value } => {
                    map.insert((family, key.to_vec()), value.to_vec());
                }
                Op::Delete { family, key } => {
                    map.remove(&(family, key.to_vec()));
                }
                Op::Add { family, key, delta } => {
                    let entry = (family, key.to_vec());
                    let sum = add_counters(map.get(&entry).map(Vec::as_slice), delta);
                    map.insert(entry, sum);
                }
            }
        }
        Ok(())
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(family, key.to_vec())).cloned())
    }

    fn scan(
        &self,
        family: Family,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let map = self.lock();
        for ((_, key), value) in map.range((family, start.to_vec())..(family, end.to_vec())) {
            if !visit(key, value) {
                break;
            }
        }
        Ok(())
    }

    fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        self.lock().retain(|(family, _), value| {
            *family != Family::Idempotency || expires_at(value).is_none_or(|at| at > now)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_conforms() {
        crate::conformance::check(&super::MemoryStore::new());
    }
}
