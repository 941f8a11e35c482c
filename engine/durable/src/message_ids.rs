//! Where a store's message ids begin. A standalone engine counts from 1; each partition of a
//! cluster counts from a base of its own (`(partition + 1) << 40`), so message ids are unique
//! across the cluster and name the partition that owns the message.

use wagate_store::{Batch, Family, Store, StoreError};

use crate::recovery::NEXT_ID_BLOCK;

/// Bits below a partition's base: room for 2^40 messages per partition.
pub const PARTITION_ID_BITS: u32 = 40;

/// The first message id of `partition`.
pub fn partition_base(partition: u32) -> u64 {
    (u64::from(partition) + 1) << PARTITION_ID_BITS
}

/// The partition whose counter gave `id` (`None`: a standalone engine's id).
pub fn partition_of_id(id: u64) -> Option<u32> {
    (id >> PARTITION_ID_BITS).checked_sub(1).map(|p| p as u32)
}

/// Makes `store`'s message ids begin at `first`, unless it already counts (a restored store
/// keeps its own counter).
pub fn begin_ids_at(store: &dyn Store, first: u64) -> Result<(), StoreError> {
    if store.get(Family::Meta, NEXT_ID_BLOCK)?.is_some() {
        return Ok(());
    }
    let mut batch = Batch::default();
    batch.put(Family::Meta, NEXT_ID_BLOCK, first.to_be_bytes());
    store.write(&batch, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_store::MemoryStore;

    #[test]
    fn a_partition_s_ids_begin_at_its_base_and_name_it() {
        assert_eq!(partition_of_id(1), None);
        assert_eq!(partition_of_id(partition_base(0)), Some(0));
        assert_eq!(partition_of_id(partition_base(4_095) + 12_345), Some(4_095));
        let store = MemoryStore::new();
        begin_ids_at(&store, partition_base(3)).expect("written");
        begin_ids_at(&store, partition_base(7)).expect("written");
        let kept = store
            .get(Family::Meta, NEXT_ID_BLOCK)
            .expect("read")
            .expect("kept");
        assert_eq!(kept, partition_base(3).to_be_bytes());
    }
}
