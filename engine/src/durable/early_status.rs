//! Statuses that arrive before their message is settled. Meta can send a message's `sent`
//! status before wagate has read Meta's answer and written the wamid down; such a status is
//! parked under `early:<wamid>` in [`Family::Idempotency`] (number 0, with an expiry, so the
//! statuses of messages wagate never sent are dropped by compaction) and applied when the
//! message is settled. Both sides write first and look for the other second, so one of them
//! always sees the other; applying twice is harmless, since delivery states only move forward.

use super::message::{Delivery, StoredMessage};
use crate::store::keys::{idempotency_key, message_key};
use crate::store::{Batch, Family, Store, StoreError};

const PARKED: Family = Family::Idempotency;

fn early_key(wamid: &str) -> Vec<u8> {
    idempotency_key(0, &format!("early:{wamid}"))
}

/// `[expiry u64 BE][delivery u8][error u32 BE]`: the expiry first, as the family requires.
fn decode(value: &[u8]) -> Option<(Delivery, u32)> {
    let delivery = Delivery::from_u8(*value.get(8)?)?;
    let error = u32::from_be_bytes(value.get(9..13)?.try_into().ok()?);
    Some((delivery, error))
}

fn encode(expires_at: u64, delivery: Delivery, error: u32) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..8].copy_from_slice(&expires_at.to_be_bytes());
    out[8] = delivery as u8;
    out[9..].copy_from_slice(&error.to_be_bytes());
    out
}

/// wagate's id of the message sent as `wamid`, once settled.
pub fn message_id(store: &dyn Store, wamid: &str) -> Result<Option<u64>, StoreError> {
    Ok(store
        .get(Family::UpstreamIds, wamid.as_bytes())?
        .and_then(|id| <[u8; 8]>::try_from(id.as_slice()).ok())
        .map(u64::from_be_bytes))
}

/// Moves message `id` to `next` if that is forward; whether it moved.
pub fn advance(store: &dyn Store, id: u64, next: Delivery, error: u32) -> Result<bool, StoreError> {
    let key = message_key(id);
    let Some(mut message) = store
        .get(Family::Messages, &key)?
        .and_then(|b| StoredMessage::decode(&b))
    else {
        return Ok(false);
    };
    if !message.delivery.advances_to(next) {
        return Ok(false);
    }
    message.delivery = next;
    if next == Delivery::Failed {
        message.delivery_error = error;
    }
    let mut batch = Batch::default();
    batch.put(Family::Messages, key, message.encode());
    store.write(&batch, true)?;
    Ok(true)
}

/// Parks a status for a wamid not yet known (until `expires_at`, Unix seconds), keeping the
/// furthest of those parked; then, if the message was settled meanwhile, applies it.
pub fn park(
    store: &dyn Store,
    wamid: &str,
    next: Delivery,
    error: u32,
    expires_at: u64,
) -> Result<(), StoreError> {
    let key = early_key(wamid);
    let parked = store.get(PARKED, &key)?.and_then(|v| decode(&v));
    if parked.is_none_or(|(delivery, _)| delivery.advances_to(next)) {
        let mut batch = Batch::default();
        batch.put(PARKED, &key, encode(expires_at, next, error));
        store.write(&batch, true)?;
    }
    if let Some(id) = message_id(store, wamid)? {
        apply_parked(store, id, wamid)?;
    }
    Ok(())
}

/// After message `id` was settled as sent under `wamid`: applies a status parked for it.
pub fn apply_parked(store: &dyn Store, id: u64, wamid: &str) -> Result<(), StoreError> {
    let key = early_key(wamid);
    let Some((delivery, error)) = store.get(PARKED, &key)?.and_then(|v| decode(&v)) else {
        return Ok(());
    };
    advance(store, id, delivery, error)?;
    let mut batch = Batch::default();
    batch.delete(PARKED, &key);
    store.write(&batch, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[test]
    fn parked_values_round_trip_and_carry_their_expiry() {
        let value = encode(1_800_000_000, Delivery::Failed, 131_026);
        assert_eq!(decode(&value), Some((Delivery::Failed, 131_026)));
        assert_eq!(crate::store::expires_at(&value), Some(1_800_000_000));
        assert_eq!(decode(b"\0\0\0\0\0\0\0\0\x09\0\0\0\0"), None);
        let store = MemoryStore::new();
        park(&store, "wamid.x", Delivery::Delivered, 0, 9).unwrap();
        park(&store, "wamid.x", Delivery::Sent, 0, 9).unwrap();
        let kept = store.get(PARKED, &early_key("wamid.x")).unwrap();
        assert_eq!(
            kept.and_then(|v| decode(&v)),
            Some((Delivery::Delivered, 0))
        );
    }
}
