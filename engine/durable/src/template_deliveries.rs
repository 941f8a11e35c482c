//! Delivered business-initiated messages, one record per (number, person): what the
//! `whatsapp-2025` way from 250 to 2K without business verification is counted from (2,000
//! unique recipients of template messages delivered outside service windows within 30 days).
//!
//! The record is written in the same batch as the status that first moved the message to
//! delivered (or straight to read), so every way a status is applied (a webhook group, a
//! parked status taken at settlement, a restart's reconciliation) counts it, and a repeat
//! overwrites it. It lives in [`Family::Idempotency`] under number 0 with an expiry, so
//! compaction drops it once no delivery path can count it. A delivery is dated by its
//! message's send slot: the statuses' own times are not kept, and a delivery trails its send
//! by seconds.

use std::collections::HashSet;

use super::message::Delivery;
use super::sent_record::SentRecord;
use wagate_rules::clock::SECS_PER_DAY;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::profile::DELIVERY_PATH_MAX_DAYS;
use wagate_store::keys::idempotency_key;
use wagate_store::{Batch, Family, Store, StoreError};

const FAMILY: Family = Family::Idempotency;
const KEPT_SECS: u64 = DELIVERY_PATH_MAX_DAYS as u64 * SECS_PER_DAY as u64;

/// Number 0's idempotency space, `delivered:`, then the number: a number's records are a range.
fn number_prefix(number: PhoneNumberId) -> Vec<u8> {
    let mut key = idempotency_key(0, "delivered:");
    key.extend_from_slice(&number.0.to_be_bytes());
    key
}

fn key(number: PhoneNumberId, person: Msisdn) -> Vec<u8> {
    let mut key = number_prefix(number);
    key.extend_from_slice(&person.digits().to_be_bytes());
    key
}

/// `[expiry u64 BE][delivered at, Unix seconds, u64 BE]`: the expiry first, as the family
/// requires.
fn value(delivered_at: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(delivered_at + KEPT_SECS).to_be_bytes());
    out[8..].copy_from_slice(&delivered_at.to_be_bytes());
    out
}

/// Whether moving the message `sent` records to `next` is its first delivery as a
/// business-initiated message.
pub(crate) fn counts(sent: &SentRecord, next: Delivery) -> bool {
    sent.business_initiated
        && matches!(sent.delivery, Delivery::None | Delivery::Sent)
        && matches!(next, Delivery::Delivered | Delivery::Read)
}

/// Adds the record of the delivery of the message `sent` records to `batch`.
pub(crate) fn record_into(sent: &SentRecord, batch: &mut Batch) {
    let delivered_at = sent.send_at.unix_secs();
    batch.put(FAMILY, key(sent.number, sent.to), value(delivered_at));
}

/// How many people messages from `numbers` were delivered to (business-initiated) since
/// `since` (Unix seconds); a person reached from two of them counts once.
pub(crate) fn unique_recipients(
    store: &dyn Store,
    numbers: &[PhoneNumberId],
    since: u64,
) -> Result<u64, StoreError> {
    let mut people = HashSet::new();
    for &number in numbers {
        let start = number_prefix(number);
        let mut end = start.clone();
        // A person's digits (15 at most) leave the first of their 8 bytes 0.
        end.push(0xff);
        store.scan(FAMILY, &start, &end, &mut |key, value| {
            let person = key
                .get(start.len()..)
                .and_then(|p| <[u8; 8]>::try_from(p).ok());
            let at = value.get(8..16).and_then(|v| <[u8; 8]>::try_from(v).ok());
            if let (Some(person), Some(at)) = (person, at) {
                if u64::from_be_bytes(at) >= since {
                    people.insert(u64::from_be_bytes(person));
                }
            }
            true
        })?;
    }
    Ok(people.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::clock::Timestamp;
    use wagate_store::MemoryStore;

    const DAY: u64 = SECS_PER_DAY as u64;
    const NOW: u64 = 1_800_000_000;

    fn sent(number: u64, to: u64, sent_at: u64, business_initiated: bool) -> SentRecord {
        SentRecord {
            id: to,
            delivery: Delivery::Sent,
            error: 0,
            business_initiated,
            number: PhoneNumberId(number),
            to: Msisdn::from_digits(to).unwrap(),
            send_at: Timestamp::from_unix_secs(sent_at),
            campaign: 0,
        }
    }

    #[test]
    fn only_a_first_delivery_of_a_business_initiated_message_counts() {
        let template = sent(1, 4_915_100_000_001, NOW, true);
        assert!(counts(&template, Delivery::Delivered));
        assert!(
            counts(&template, Delivery::Read),
            "read without delivered first"
        );
        assert!(!counts(&template, Delivery::Failed));
        let reply = sent(1, 4_915_100_000_001, NOW, false);
        assert!(
            !counts(&reply, Delivery::Delivered),
            "a reply in the window"
        );
        let mut delivered = template;
        delivered.delivery = Delivery::Delivered;
        assert!(
            !counts(&delivered, Delivery::Read),
            "counted when it was delivered"
        );
    }

    #[test]
    fn people_count_once_across_numbers_and_only_inside_the_window() {
        let store = MemoryStore::new();
        let mut batch = Batch::default();
        for (number, to, at) in [
            (1, 4_915_100_000_001, NOW),
            (1, 4_915_100_000_002, NOW - DAY),
            (2, 4_915_100_000_001, NOW - 2 * DAY),
            (2, 4_915_100_000_003, NOW - 40 * DAY),
            (3, 4_915_100_000_004, NOW),
        ] {
            record_into(&sent(number, to, at, true), &mut batch);
        }
        store.write(&batch, true).unwrap();
        let since = NOW - 30 * DAY;
        let both = [PhoneNumberId(1), PhoneNumberId(2)];
        assert_eq!(unique_recipients(&store, &both, since).unwrap(), 2);
        assert_eq!(unique_recipients(&store, &both, NOW - 50 * DAY).unwrap(), 3);
        assert_eq!(
            unique_recipients(&store, &[PhoneNumberId(3)], since).unwrap(),
            1
        );
        assert_eq!(
            unique_recipients(&store, &[PhoneNumberId(9)], since).unwrap(),
            0
        );
    }

    #[test]
    fn a_record_expires_after_the_longest_path_and_a_repeat_overwrites_it() {
        let record = value(NOW);
        assert_eq!(wagate_store::expires_at(&record), Some(NOW + 31 * DAY));
        let store = MemoryStore::new();
        for at in [NOW - 35 * DAY, NOW] {
            let mut batch = Batch::default();
            record_into(&sent(1, 4_915_100_000_001, at, true), &mut batch);
            store.write(&batch, true).unwrap();
        }
        let since = NOW - 30 * DAY;
        assert_eq!(
            unique_recipients(&store, &[PhoneNumberId(1)], since).unwrap(),
            1
        );
    }
}
