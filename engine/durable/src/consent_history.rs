//! Every consent event, append-only (`consent_history`): when, through which number, what
//! changed (all, marketing, named topics), and where it came from (API, keyword, button,
//! Meta's preference, a delivery failure). Written in the group commit of the change itself,
//! so the history and the state never disagree; read back per person, oldest first.
//!
//! Key `[business u64][person u64][at µs u64][sequence u64]`, all big-endian: a person's events
//! are one range, in time order. The sequence tells apart events of one person at one instant
//! (an import naming them twice); it starts each run from the clock's nanoseconds, so a run
//! never reuses an earlier run's key even when a manual clock repeats instants.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use wagate_rules::clock::Timestamp;
use wagate_rules::contact_events::{ConsentChange, ConsentEvent};
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId};
use wagate_rules::registry::Registry;
use wagate_rules::state::contact::ConsentSource;
use wagate_rules::topics::TopicSet;
use wagate_store::keys::{Reader, Writer};
use wagate_store::{Batch, Family, Store, StoreError};

/// One event as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub at: Timestamp,
    pub number: PhoneNumberId,
    pub change: ConsentChange,
    pub source: ConsentSource,
    /// The caller's proof (JSON), when the change came through the API with one.
    pub evidence: Option<String>,
}

/// The most evidence one event keeps (its JSON's bytes); the API refuses more.
pub const MAX_EVIDENCE_BYTES: usize = 2_048;

pub(crate) fn sequence() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        AtomicU64::new(nanos)
    })
    .fetch_add(1, Ordering::Relaxed)
}

fn person_prefix(account: AccountId, person: Msisdn) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&account.0.to_be_bytes());
    key[8..].copy_from_slice(&person.digits().to_be_bytes());
    key
}

/// The change as two bytes: its kind and its topics.
fn change_code(change: ConsentChange) -> (u8, u8) {
    match change {
        ConsentChange::OptIn => (1, 0),
        ConsentChange::OptOut => (2, 0),
        ConsentChange::MarketingOptOut => (3, 0),
        ConsentChange::MarketingOptIn => (4, 0),
        ConsentChange::TopicsOptOut(topics) => (5, topics.0),
        ConsentChange::TopicsOptIn(topics) => (6, topics.0),
    }
}

fn change_of(kind: u8, topics: u8) -> Option<ConsentChange> {
    Some(match kind {
        1 => ConsentChange::OptIn,
        2 => ConsentChange::OptOut,
        3 => ConsentChange::MarketingOptOut,
        4 => ConsentChange::MarketingOptIn,
        5 => ConsentChange::TopicsOptOut(TopicSet(topics)),
        6 => ConsentChange::TopicsOptIn(TopicSet(topics)),
        _ => return None,
    })
}

/// Adds `events` to `batch`, each under its number's business (an event of a number no longer
/// registered is dropped: it has no business to belong to).
pub(crate) fn write(batch: &mut Batch, events: &[ConsentEvent], registry: &Registry) {
    for event in events {
        let Some(number) = registry.number(event.number) else {
            continue;
        };
        let mut key = person_prefix(number.account, event.person).to_vec();
        key.extend_from_slice(&event.at.0.to_be_bytes());
        key.extend_from_slice(&sequence().to_be_bytes());
        let (kind, topics) = change_code(event.change);
        let mut value = Writer::default();
        value
            .u64(event.number.0)
            .u8(kind)
            .u8(topics)
            .u8(event.source as u8);
        if let Some(evidence) = &event.evidence {
            value.bytes(evidence.as_bytes());
        }
        batch.put(Family::ConsentHistory, key, value.bytes);
    }
}

/// A person's events with a business, oldest first.
pub(crate) fn read(
    store: &dyn Store,
    account: AccountId,
    person: Msisdn,
) -> Result<Vec<ConsentRecord>, StoreError> {
    let mut events = Vec::new();
    scan(store, account, Some(person), &mut |_, record| {
        events.push(record);
        true
    })?;
    Ok(events)
}

/// Visits the events of a business (of one person of it, when given), person by person and
/// each person's oldest first, until `visit` says stop; nothing is held but the one event.
pub fn scan(
    store: &dyn Store,
    account: AccountId,
    person: Option<Msisdn>,
    visit: &mut dyn FnMut(Msisdn, ConsentRecord) -> bool,
) -> Result<(), StoreError> {
    let start = match person {
        Some(person) => person_prefix(account, person).to_vec(),
        None => account.0.to_be_bytes().to_vec(),
    };
    let mut end = start.clone();
    end.extend_from_slice(&[0xff; 32]);
    store.scan(
        Family::ConsentHistory,
        &start,
        &end,
        &mut |key, value| match decode(key, value) {
            Some((person, record)) => visit(person, record),
            None => true,
        },
    )
}

/// Deletes, in `batch`, every event of `person` with `account` (an erasure); returns how many.
pub(crate) fn delete_person(
    store: &dyn Store,
    batch: &mut Batch,
    account: AccountId,
    person: Msisdn,
) -> Result<usize, StoreError> {
    let start = person_prefix(account, person);
    let mut end = start.to_vec();
    end.extend_from_slice(&[0xff; 32]);
    let mut deleted = 0;
    store.scan(Family::ConsentHistory, &start, &end, &mut |key, _| {
        batch.delete(Family::ConsentHistory, key);
        deleted += 1;
        true
    })?;
    Ok(deleted)
}

fn decode(key: &[u8], value: &[u8]) -> Option<(Msisdn, ConsentRecord)> {
    let person = Msisdn::from_digits(u64::from_be_bytes(key.get(8..16)?.try_into().ok()?)).ok()?;
    let at = u64::from_be_bytes(key.get(16..24)?.try_into().ok()?);
    let mut reader = Reader::new(value);
    let number = PhoneNumberId(reader.u64()?);
    let change = change_of(reader.u8()?, reader.u8()?)?;
    let source = ConsentSource::from_u8(reader.u8()?);
    Some((
        person,
        ConsentRecord {
            at: Timestamp(at),
            number,
            change,
            source,
            evidence: reader.string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_round_trips_its_code() {
        for change in [
            ConsentChange::OptIn,
            ConsentChange::OptOut,
            ConsentChange::MarketingOptOut,
            ConsentChange::MarketingOptIn,
            ConsentChange::TopicsOptOut(TopicSet(6)),
            ConsentChange::TopicsOptIn(TopicSet(8)),
        ] {
            let (kind, topics) = change_code(change);
            assert_eq!(change_of(kind, topics), Some(change));
        }
        assert_eq!(change_of(9, 0), None);
        assert_ne!(sequence(), sequence());
    }
}
