//! A shard's contacts: an open-addressing table built for memory per contact.
//!
//! Hot file. A general hash map with power-of-two growth sits between 44 % and 88 % full, so at
//! an unlucky size a contact costs twice its bytes. This table grows by 1.2x at 92 % load
//! (Robin Hood linear probing, Lemire reduction, any capacity), keeping a 40-byte slot at 43 to
//! 52 bytes per contact. Robin Hood keeps a cluster's slots in the order of their home slots,
//! each with its distance from home, so a look-up stops at the first slot whose home is after
//! its own: a miss costs about what a hit does even this full. Keys are never removed one by
//! one; the table is rebuilt when it grows, leaving behind records that say nothing (an erased
//! person's).
//!
//! A slot keeps the record's common fields (28 bytes); the two times that are rare (a free
//! entry point window, Meta's marketing cool-down) live in a side map, looked up only when the
//! slot's flag says it has them. Records go in and out whole, by value (`get`, `update`).
//!
//! A person's records with business numbers all hash to one home slot (the number is not
//! mixed in), so they sit side by side: a miss for one number has walked past the person's
//! records with the others already, which is where the business's consent is found
//! (`ContactTable::numbers_of`). Portfolio records mix their scope in, staying out of the run.

use crate::clock::Secs;
use crate::hash::{mix64, reduce, MixHashMap};
use crate::scope::PORTFOLIO_SCOPE_BIT;
use crate::state::contact::ContactRecord;

/// A contact's key: the person and the scope (a business number's index, or a portfolio's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactKey {
    pub person: u64,
    pub scope: u32,
}

impl ContactKey {
    /// The table hash; `person_hash` is `mix64(person)`, whose top bits already chose the shard.
    /// A number's records hash by the person alone (see the module's note).
    #[inline]
    pub fn table_hash(&self, person_hash: u64) -> u64 {
        if self.scope & PORTFOLIO_SCOPE_BIT == 0 {
            number_home_hash(person_hash)
        } else {
            mix64(person_hash ^ u64::from(self.scope).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        }
    }
}

/// Where every record of a person with a business number starts probing.
#[inline]
fn number_home_hash(person_hash: u64) -> u64 {
    mix64(person_hash)
}

/// A record's fields but the rare times: 28 bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct StoredRecord {
    window_until: Secs,
    last_business_initiated: Secs,
    pair_tat: Secs,
    consent_at: Secs,
    marketing_sends: [Secs; 2],
    flags: u16,
    consent_source: u8,
    /// [`HAS_RARE_TIMES`] when the side map holds this key's rare times, and the slot's
    /// distance from its home slot above it (`DIST_SHIFT`).
    table_bits: u8,
}

const HAS_RARE_TIMES: u8 = 1;
const DIST_SHIFT: u32 = 1;
/// The largest distance a slot keeps; a slot farther from home (a person with that many
/// numbers' records) keeps this, and its distance is worked out from its hash.
const FAR: u8 = u8::MAX >> DIST_SHIFT;

/// The times few records ever hold, kept beside the table.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct RareTimes {
    fep_until: Secs,
    marketing_cooldown_until: Secs,
}

impl RareTimes {
    #[inline]
    fn of(record: &ContactRecord) -> RareTimes {
        RareTimes {
            fep_until: record.fep_until,
            marketing_cooldown_until: record.marketing_cooldown_until,
        }
    }

    #[inline]
    fn is_none(&self) -> bool {
        self.fep_until == 0 && self.marketing_cooldown_until == 0
    }
}

impl StoredRecord {
    #[inline]
    fn of(record: &ContactRecord, has_rare_times: bool, dist: u8) -> StoredRecord {
        StoredRecord {
            window_until: record.window_until,
            last_business_initiated: record.last_business_initiated,
            pair_tat: record.pair_tat,
            consent_at: record.consent_at,
            marketing_sends: record.marketing_sends,
            flags: record.flags,
            consent_source: record.consent_source,
            table_bits: dist << DIST_SHIFT | u8::from(has_rare_times),
        }
    }

    #[inline]
    fn has_rare_times(&self) -> bool {
        self.table_bits & HAS_RARE_TIMES != 0
    }

    #[inline]
    fn with(&self, rare: RareTimes) -> ContactRecord {
        ContactRecord {
            window_until: self.window_until,
            last_business_initiated: self.last_business_initiated,
            pair_tat: self.pair_tat,
            consent_at: self.consent_at,
            marketing_cooldown_until: rare.marketing_cooldown_until,
            marketing_sends: self.marketing_sends,
            fep_until: rare.fep_until,
            flags: self.flags,
            consent_source: self.consent_source,
            _reserved: 0,
        }
    }

    /// Whether the record says nothing (an erased person's): the same as none.
    #[inline]
    fn says_nothing(&self) -> bool {
        StoredRecord {
            table_bits: self.table_bits & HAS_RARE_TIMES,
            ..*self
        } == StoredRecord::default()
    }
}

/// Person digits split in two halves so that the slot aligns to 4 bytes (40, not 48).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    person_low: u32,
    person_high: u32,
    scope: u32,
    record: StoredRecord,
}

impl Slot {
    #[inline]
    fn person(&self) -> u64 {
        u64::from(self.person_high) << 32 | u64::from(self.person_low)
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.person_low == 0 && self.person_high == 0
    }

    #[inline]
    fn holds(&self, key: &ContactKey) -> bool {
        self.person() == key.person && self.scope == key.scope
    }

    #[inline]
    fn key(&self) -> ContactKey {
        ContactKey {
            person: self.person(),
            scope: self.scope,
        }
    }

    /// How far this slot sits from its home slot, up to [`FAR`].
    #[inline]
    fn kept_dist(&self) -> u8 {
        self.record.table_bits >> DIST_SHIFT
    }

    #[inline]
    fn set_dist(&mut self, dist: usize) {
        let kept = dist.min(usize::from(FAR)) as u8;
        self.record.table_bits = kept << DIST_SHIFT | (self.record.table_bits & HAS_RARE_TIMES);
    }

    fn hash(&self) -> u64 {
        let key = self.key();
        key.table_hash(mix64(key.person))
    }
}

const MAX_LOAD_PERCENT: usize = 92;
const GROWTH_PERCENT: usize = 120;
const MIN_CAPACITY: usize = 64;

pub struct ContactTable {
    slots: Vec<Slot>,
    len: usize,
    rare: MixHashMap<ContactKey, RareTimes>,
}

impl Default for ContactTable {
    fn default() -> Self {
        ContactTable {
            slots: vec![Slot::default(); MIN_CAPACITY],
            len: 0,
            rare: MixHashMap::default(),
        }
    }
}

impl ContactTable {
    /// Makes room for `additional` more contacts at once, so that loading a known number of
    /// them never rehashes.
    pub fn reserve(&mut self, additional: usize) {
        let needed = (self.len + additional) * 100 / MAX_LOAD_PERCENT + 1;
        if needed > self.slots.len() {
            self.resize(needed);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        // A side-map entry: its key, its times, and hashbrown's control byte.
        let rare_entry = std::mem::size_of::<(ContactKey, RareTimes)>() + 1;
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.rare.capacity() * rare_entry
    }

    /// The whole record in `slot`.
    #[inline]
    fn record_at(&self, slot: &Slot) -> ContactRecord {
        let rare = if slot.record.has_rare_times() {
            self.rare.get(&slot.key()).copied().unwrap_or_default()
        } else {
            RareTimes::default()
        };
        slot.record.with(rare)
    }

    /// How far the (occupied) slot at `index` sits from its home slot.
    #[inline]
    fn dist_at(&self, index: usize) -> usize {
        let slot = &self.slots[index];
        let kept = slot.kept_dist();
        if kept < FAR {
            return usize::from(kept);
        }
        let capacity = self.slots.len();
        (index + capacity - reduce(slot.hash(), capacity)) % capacity
    }

    /// Where `key` is; `None` once a slot whose home is after the key's (or an empty one)
    /// shows it is not here.
    #[inline]
    fn find(&self, key: &ContactKey, hash: u64) -> Option<usize> {
        let capacity = self.slots.len();
        let mut index = reduce(hash, capacity);
        let mut dist = 0;
        loop {
            let slot = &self.slots[index];
            if slot.is_empty() {
                return None;
            }
            if slot.holds(key) {
                return Some(index);
            }
            if self.dist_at(index) < dist {
                return None;
            }
            index += 1;
            if index == capacity {
                index = 0;
            }
            dist += 1;
        }
    }

    /// Puts `carry` (a key not in the table, the table not full) where Robin Hood says,
    /// moving on the slots it passes that sit nearer their homes; returns where `carry`
    /// landed.
    fn place(&mut self, mut carry: Slot, hash: u64) -> usize {
        let capacity = self.slots.len();
        let mut index = reduce(hash, capacity);
        let mut dist = 0;
        let mut landed = None;
        loop {
            if self.slots[index].is_empty() {
                carry.set_dist(dist);
                self.slots[index] = carry;
                self.len += 1;
                return landed.unwrap_or(index);
            }
            let there = self.dist_at(index);
            if there < dist {
                carry.set_dist(dist);
                std::mem::swap(&mut self.slots[index], &mut carry);
                landed.get_or_insert(index);
                dist = there;
            }
            index += 1;
            if index == capacity {
                index = 0;
            }
            dist += 1;
        }
    }

    #[inline]
    pub fn get(&self, key: &ContactKey, hash: u64) -> Option<ContactRecord> {
        self.find(key, hash).map(|i| self.record_at(&self.slots[i]))
    }

    /// Changes the record for `key` (an empty one if there is none) and returns what `change`
    /// returns.
    #[inline]
    pub fn update<R>(
        &mut self,
        key: &ContactKey,
        hash: u64,
        change: impl FnOnce(&mut ContactRecord) -> R,
    ) -> R {
        let index = self.slot_for(key, hash);
        let mut record = self.record_at(&self.slots[index]);
        let result = change(&mut record);
        self.store(index, key, &record);
        result
    }

    /// Sets the record for `key`.
    #[inline]
    pub fn put(&mut self, key: &ContactKey, hash: u64, record: ContactRecord) {
        let index = self.slot_for(key, hash);
        self.store(index, key, &record);
    }

    /// Sets many records (a restore), reading each one's home slot before placing any: the
    /// reads are independent, so their cache misses overlap instead of coming one after
    /// another (a table of millions is mostly out of cache).
    pub fn put_many(&mut self, records: &[(ContactKey, ContactRecord)]) {
        const BATCH: usize = 32;
        let mut hashes = [0u64; BATCH];
        for chunk in records.chunks(BATCH) {
            let capacity = self.slots.len();
            for ((key, _), hash) in chunk.iter().zip(hashes.iter_mut()) {
                *hash = key.table_hash(mix64(key.person));
                std::hint::black_box(self.slots[reduce(*hash, capacity)].person_low);
            }
            for ((key, record), hash) in chunk.iter().zip(hashes) {
                self.put(key, hash, *record);
            }
        }
    }

    #[inline]
    fn store(&mut self, index: usize, key: &ContactKey, record: &ContactRecord) {
        let rare = RareTimes::of(record);
        let had_rare = self.slots[index].record.has_rare_times();
        if !rare.is_none() {
            self.rare.insert(*key, rare);
        } else if had_rare {
            self.rare.remove(key);
        }
        let kept_dist = self.slots[index].kept_dist();
        self.slots[index].record = StoredRecord::of(record, !rare.is_none(), kept_dist);
    }

    /// The slot holding `key`, taken (with an empty record) if there is none.
    #[inline]
    fn slot_for(&mut self, key: &ContactKey, hash: u64) -> usize {
        debug_assert!(key.person != 0, "person digits are never zero");
        if let Some(index) = self.find(key, hash) {
            return index;
        }
        if (self.len + 1) * 100 > self.slots.len() * MAX_LOAD_PERCENT {
            self.grow();
        }
        let slot = Slot {
            person_low: key.person as u32,
            person_high: (key.person >> 32) as u32,
            scope: key.scope,
            record: StoredRecord::default(),
        };
        self.place(slot, hash)
    }

    fn grow(&mut self) {
        self.resize((self.slots.len() * GROWTH_PERCENT / 100).max(MIN_CAPACITY));
    }

    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); capacity]);
        // A record that says nothing (an erased person's) is the same as none: left behind.
        // Its rare times, if any, say something, and its flag is set then.
        let kept = |s: &Slot| !s.is_empty() && !s.record.says_nothing();
        self.len = 0;
        for slot in old.into_iter().filter(kept) {
            let hash = slot.hash();
            self.place(slot, hash);
        }
    }

    /// The person's records with business numbers, as (scope, record): side by side from
    /// their home slot on (past slots from earlier homes), so this walks what a miss for one
    /// of them walked already.
    #[inline]
    pub fn numbers_of(
        &self,
        person: u64,
        person_hash: u64,
    ) -> impl Iterator<Item = (u32, ContactRecord)> + '_ {
        let capacity = self.slots.len();
        let home = reduce(number_home_hash(person_hash), capacity);
        (home..capacity)
            .chain(0..home)
            .zip(0..)
            // Slots farther from home than `dist` came from earlier homes; nearer, later ones.
            .take_while(move |(index, dist)| {
                !self.slots[*index].is_empty() && self.dist_at(*index) >= *dist
            })
            .map(|(index, _)| &self.slots[index])
            .filter(move |slot| slot.person() == person && slot.scope & PORTFOLIO_SCOPE_BIT == 0)
            .map(|slot| (slot.scope, self.record_at(slot)))
    }

    /// Every key and record, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (ContactKey, ContactRecord)> + '_ {
        self.slots
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| (s.key(), self.record_at(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(person: u64, scope: u32) -> (ContactKey, u64) {
        let key = ContactKey { person, scope };
        (key, key.table_hash(mix64(person)))
    }

    #[test]
    fn reserving_makes_room_without_changing_contents() {
        let mut table = ContactTable::default();
        let (k, h) = key(16_505_551_234, 1);
        table.update(&k, h, |r| r.window_until = 7);
        table.reserve(10_000);
        let capacity = table.heap_bytes();
        for i in 0..10_000u64 {
            let (k, h) = key(20_000_000_000 + i, 2);
            table.update(&k, h, |_| ());
        }
        assert_eq!(table.heap_bytes(), capacity, "no growth after reserving");
        assert_eq!(table.get(&k, h).map(|r| r.window_until), Some(7));
        assert_eq!(table.len(), 10_001);
    }

    #[test]
    fn a_record_that_says_nothing_is_left_behind_when_the_table_grows() {
        let mut table = ContactTable::default();
        let (erased, erased_hash) = key(16_505_551_234, 1);
        let (kept, kept_hash) = key(16_505_555_678, 1);
        table.update(&erased, erased_hash, |r| r.window_until = 7);
        table.update(&kept, kept_hash, |r| r.window_until = 9);
        table.put(&erased, erased_hash, ContactRecord::default());
        table.reserve(1_000);
        assert!(table.get(&erased, erased_hash).is_none());
        assert_eq!(table.get(&kept, kept_hash).map(|r| r.window_until), Some(9));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_persons_number_records_are_found_in_one_run_through_growth() {
        let mut table = ContactTable::default();
        let ana = 16_505_551_234;
        for scope in [3, 7, PORTFOLIO_SCOPE_BIT | 1, 12] {
            let (k, h) = key(ana, scope);
            table.update(&k, h, |r| r.window_until = scope);
        }
        for i in 0..20_000u64 {
            let (k, h) = key(20_000_000_000 + i, (i % 5) as u32);
            table.update(&k, h, |_| ());
        }
        let mut found: Vec<(u32, u32)> = table
            .numbers_of(ana, mix64(ana))
            .map(|(scope, record)| (scope, record.window_until))
            .collect();
        found.sort_unstable();
        assert_eq!(found, vec![(3, 3), (7, 7), (12, 12)], "not the portfolio's");
        assert_eq!(table.numbers_of(99, mix64(99)).count(), 0);
    }

    #[test]
    fn rare_times_live_beside_the_table_and_only_while_set() {
        let mut table = ContactTable::default();
        let (ana, ana_hash) = key(16_505_551_234, 1);
        table.update(&ana, ana_hash, |r| {
            r.fep_until = 900;
            r.marketing_cooldown_until = 800;
        });
        assert_eq!(table.rare.len(), 1);
        for i in 0..5_000u64 {
            let (k, h) = key(20_000_000_000 + i, 2);
            table.update(&k, h, |r| r.window_until = 5);
        }
        let record = table.get(&ana, ana_hash).unwrap();
        assert_eq!(
            (record.fep_until, record.marketing_cooldown_until),
            (900, 800)
        );
        assert_eq!(table.iter().filter(|(_, r)| r.fep_until != 0).count(), 1);
        // Only rare times: still a record that says something, kept through growth.
        table.reserve(20_000);
        assert!(table.get(&ana, ana_hash).is_some());
        table.update(&ana, ana_hash, |r| {
            r.fep_until = 0;
            r.marketing_cooldown_until = 0;
        });
        assert!(table.rare.is_empty(), "cleared times leave the side map");
        table.reserve(40_000);
        assert!(table.get(&ana, ana_hash).is_none(), "nothing left to say");
    }

    #[test]
    fn a_person_with_more_numbers_than_a_slot_can_count_is_found_whole() {
        // 300 records share one home: most sit farther from it than a slot keeps.
        let mut table = ContactTable::default();
        let ana = 16_505_551_234;
        for scope in 0..300u32 {
            let (k, h) = key(ana, scope);
            table.update(&k, h, |r| r.window_until = scope + 1);
            let (k, h) = key(30_000_000_000 + u64::from(scope), 1);
            table.update(&k, h, |r| r.window_until = 1);
        }
        for i in 0..20_000u64 {
            let (k, h) = key(20_000_000_000 + i, (i % 7) as u32);
            table.update(&k, h, |r| r.window_until = 2);
        }
        for scope in 0..300u32 {
            let (k, h) = key(ana, scope);
            assert_eq!(table.get(&k, h).map(|r| r.window_until), Some(scope + 1));
        }
        assert!(table.get(&key(ana, 300).0, key(ana, 300).1).is_none());
        let mut found: Vec<u32> = table.numbers_of(ana, mix64(ana)).map(|(s, _)| s).collect();
        found.sort_unstable();
        assert_eq!(found, (0..300).collect::<Vec<_>>());
        assert_eq!(table.len(), 300 + 300 + 20_000);
    }

    #[test]
    fn records_put_many_at_once_read_back_as_put_one_by_one() {
        let records: Vec<(ContactKey, ContactRecord)> = (0..10_000u64)
            .map(|i| {
                let record = ContactRecord {
                    window_until: i as u32 + 1,
                    fep_until: (i % 3) as u32,
                    ..ContactRecord::default()
                };
                (key(20_000_000_000 + i / 2, (i % 2) as u32).0, record)
            })
            .collect();
        let mut many = ContactTable::default();
        many.put_many(&records);
        assert_eq!(many.len(), records.len());
        for (k, record) in &records {
            assert_eq!(many.get(k, k.table_hash(mix64(k.person))), Some(*record));
        }
    }

    #[test]
    fn slot_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn behaves_like_a_map_through_growth() {
        let mut table = ContactTable::default();
        let mut model = HashMap::new();
        for i in 0..50_000u64 {
            let person = 10_000_000_000 + (i * 7_919) % 30_011;
            let scope = (i % 3) as u32;
            let (k, h) = key(person, scope);
            table.update(&k, h, |record| record.window_until += 1);
            *model.entry((person, scope)).or_insert(0u32) += 1;
        }
        assert_eq!(table.len(), model.len());
        for ((person, scope), count) in &model {
            let (k, h) = key(*person, *scope);
            assert_eq!(table.get(&k, h).map(|r| r.window_until), Some(*count));
        }
        assert!(table.get(&key(99, 0).0, key(99, 0).1).is_none());
        assert_eq!(table.iter().count(), model.len());
        let load = table.len() as f64 / (table.heap_bytes() / size_of::<Slot>()) as f64;
        assert!((0.76..=0.92).contains(&load), "load {load}");
    }
}
