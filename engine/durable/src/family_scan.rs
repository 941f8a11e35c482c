//! Reading a whole column family, record by record (start-up's restores, and the small
//! families read whole: the registry's records, the ledger's rows).

use wagate_store::{Family, Store, StoreError};

/// Visits every record of `family`, in key order.
pub(crate) fn everything(
    store: &dyn Store,
    family: Family,
    mut visit: impl FnMut(&[u8], &[u8]),
) -> Result<(), StoreError> {
    store.scan(family, &[], &[0xff; 16], &mut |key, value| {
        visit(key, value);
        true
    })
}
