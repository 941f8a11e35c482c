//! The conformance suite every [`Store`] must pass: the memory store and RocksDB run it in their
//! unit tests, and a provider's own store can call [`check`] the same way.

// A conformance suite: an unwrap that fails is the store failing the suite.
#![allow(clippy::unwrap_used)]

use crate::{Batch, Family, Store};

fn get(store: &dyn Store, family: Family, key: &[u8]) -> Option<Vec<u8>> {
    store.get(family, key).expect("get")
}

fn keys_in(store: &dyn Store, family: Family, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    store
        .scan(family, start, end, &mut |key, _| {
            keys.push(key.to_vec());
            true
        })
        .expect("scan");
    keys
}

/// Runs every check against an empty store; panics with the first disagreement.
pub fn check(store: &dyn Store) {
    puts_deletes_and_families_are_separate(store);
    scans_are_ordered_bounded_and_stoppable(store);
    counters_add_up_in_place(store);
    expired_idempotency_records_are_purged(store);
    a_batch_applies_in_order(store);
}

fn puts_deletes_and_families_are_separate(store: &dyn Store) {
    let mut batch = Batch::default();
    batch.put(Family::Contacts, b"k1", b"contact");
    batch.put(Family::Messages, b"k1", b"message");
    store.write(&batch, true).unwrap();
    assert_eq!(
        get(store, Family::Contacts, b"k1").as_deref(),
        Some(&b"contact"[..])
    );
    assert_eq!(
        get(store, Family::Messages, b"k1").as_deref(),
        Some(&b"message"[..])
    );
    assert_eq!(get(store, Family::Registry, b"k1"), None);
    let mut batch = Batch::default();
    batch.delete(Family::Contacts, b"k1");
    store.write(&batch, false).unwrap();
    assert_eq!(get(store, Family::Contacts, b"k1"), None);
    assert!(get(store, Family::Messages, b"k1").is_some());
}

fn scans_are_ordered_bounded_and_stoppable(store: &dyn Store) {
    let mut batch = Batch::default();
    for key in [[0u8, 9], [0, 1], [1, 0], [0, 5], [2, 0]] {
        batch.put(Family::Registry, key, vec![key[1]]);
    }
    store.write(&batch, true).unwrap();
    assert_eq!(
        keys_in(store, Family::Registry, &[0], &[1, 0]),
        vec![vec![0, 1], vec![0, 5], vec![0, 9]]
    );
    let mut first_two = Vec::new();
    store
        .scan(Family::Registry, &[], &[0xff], &mut |key, _| {
            first_two.push(key.to_vec());
            first_two.len() < 2
        })
        .unwrap();
    assert_eq!(first_two, vec![vec![0, 1], vec![0, 5]]);
}

fn counters_add_up_in_place(store: &dyn Store) {
    for (messages, micros) in [(1, 50_000), (2, 100), (0, 7)] {
        let mut batch = Batch::default();
        batch.add(Family::Ledger, b"n1", messages, micros);
        store.write(&batch, false).unwrap();
    }
    let value = get(store, Family::Ledger, b"n1").unwrap();
    assert_eq!(u64::from_le_bytes(value[..8].try_into().unwrap()), 3);
    assert_eq!(u64::from_le_bytes(value[8..].try_into().unwrap()), 50_107);
}

fn expired_idempotency_records_are_purged(store: &dyn Store) {
    let mut batch = Batch::default();
    for (key, expiry) in [(b"old".as_slice(), 1_000u64), (b"new", 5_000)] {
        let mut value = expiry.to_be_bytes().to_vec();
        value.extend_from_slice(b"outcome");
        batch.put(Family::Idempotency, key, value);
    }
    batch.put(Family::Contacts, b"untouched", 1_000u64.to_be_bytes());
    store.write(&batch, true).unwrap();
    store.purge_expired(2_000).unwrap();
    assert_eq!(get(store, Family::Idempotency, b"old"), None);
    assert!(get(store, Family::Idempotency, b"new").is_some());
    assert!(
        get(store, Family::Contacts, b"untouched").is_some(),
        "only idempotency expires"
    );
}

fn a_batch_applies_in_order(store: &dyn Store) {
    let mut batch = Batch::default();
    batch.put(Family::Meta, b"x", b"1");
    batch.delete(Family::Meta, b"x");
    batch.put(Family::Meta, b"y", b"1");
    batch.put(Family::Meta, b"y", b"2");
    let mut appended = Batch::default();
    appended.append(&mut batch);
    assert!(batch.is_empty() && appended.len() == 4);
    store.write(&appended, true).unwrap();
    assert_eq!(get(store, Family::Meta, b"x"), None);
    assert_eq!(get(store, Family::Meta, b"y").as_deref(), Some(&b"2"[..]));
}
