//! A shard: the single owner of a slice of people and everything about them.
//!
//! Persons are placed on shards by hash; a shard touches its contacts, expiry queues, sketches
//! and ledger without locks because nothing else touches them. What it shares (numbers, scopes,
//! templates) it reads through atomics, caching the `Arc`s locally.

mod decide;
mod erase;
mod heap;

mod events;
mod limit;
mod pool;
mod restore;
mod screen;

pub use heap::HeapBytes;
pub use screen::Screened;

use std::sync::Arc;

use crate::contact_events::ConsentEvent;
use crate::hash::MixHashMap;
use crate::ids::{AccountId, PhoneNumberId};
use crate::number::NumberState;
use crate::price::Ledger;
use crate::registered_template::Template;
use crate::scope::LimitScope;
use crate::shard_context::Core;
use crate::sketch::windowed::ShardSketch;
use crate::state::contact::{flags, ContactRecord};
use crate::state::contact_table::{ContactKey, ContactTable};
use crate::state::expiry::ExpiryQueue;

/// This shard's part of one limit scope.
struct ShardScope {
    scope: Arc<LimitScope>,
    expiry: ExpiryQueue,
    /// When the front of `expiry` comes due; `u32::MAX` when empty.
    front_due: u32,
    sketch: ShardSketch,
}

/// The state a shard owns, apart from the shared core.
struct ShardState {
    index: usize,
    contacts: ContactTable,
    scopes: MixHashMap<u32, ShardScope>,
    numbers: MixHashMap<PhoneNumberId, Arc<NumberState>>,
    templates: MixHashMap<u64, Arc<Template>>,
    cache_generation: u64,
    /// No scope part has a counted recipient due before this second (a lower bound: a part's
    /// due time lowers it, only a sweep raises it), so a worker catches up on expirations
    /// with one comparison per group (see [`Shard::expire_due`]).
    earliest_due: u32,
    ledger: Ledger,
    /// Contact records changed since the last drain, when the shard is persisted.
    journal: Option<Vec<(ContactKey, ContactRecord)>>,
    /// Consent changes applied since the last drain, when the shard is persisted.
    consent_log: Option<Vec<ConsentEvent>>,
    /// Automated sends of the last hour to this shard's persons.
    automated: crate::automations::LoopGuard,
}

pub struct Shard {
    core: Arc<Core>,
    state: ShardState,
}

impl Shard {
    pub fn new(core: Arc<Core>, index: usize) -> Shard {
        Shard {
            state: ShardState {
                index,
                contacts: ContactTable::default(),
                scopes: MixHashMap::default(),
                numbers: MixHashMap::default(),
                templates: MixHashMap::default(),
                cache_generation: core.registry.generation(),
                earliest_due: u32::MAX,
                ledger: Ledger::default(),
                journal: None,
                consent_log: None,
                automated: Default::default(),
            },
            core,
        }
    }

    pub fn index(&self) -> usize {
        self.state.index
    }

    pub fn contacts(&self) -> usize {
        self.state.contacts.len()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.state.ledger
    }

    /// From now on, remember every contact record that changes, for [`Shard::drain_journal`].
    pub fn enable_journal(&mut self) {
        self.state.journal.get_or_insert_with(Vec::new);
        self.state.consent_log.get_or_insert_with(Vec::new);
    }

    /// Hands over the contact records changed since the last call, in order of change.
    pub fn drain_journal(&mut self, into: &mut Vec<(ContactKey, ContactRecord)>) {
        if let Some(journal) = &mut self.state.journal {
            into.append(journal);
        }
    }

    /// Moves the consent changes applied since the last call into `into` (with the journal).
    pub fn drain_consent_log(&mut self, into: &mut Vec<ConsentEvent>) {
        if let Some(log) = &mut self.state.consent_log {
            into.append(log);
        }
    }

    /// Notes an applied consent change for the history (when the shard is persisted).
    fn log_consent(&mut self, event: ConsentEvent) {
        if let Some(log) = &mut self.state.consent_log {
            log.push(event);
        }
    }

    /// Heap bytes of the contact table, expiry queues and sketches (for memory reports).
    pub fn heap_bytes(&self) -> HeapBytes {
        let mut bytes = HeapBytes {
            contacts: self.state.contacts.heap_bytes(),
            ..HeapBytes::default()
        };
        for scope in self.state.scopes.values() {
            bytes.expiry += scope.expiry.heap_bytes();
            bytes.sketches += scope.sketch.heap_bytes();
        }
        bytes
    }
}

/// Journals the record under `key` as it is now (persisted shards only). A free function so
/// that it borrows the journal and the table alone, beside a cached number.
#[inline]
fn journal_note(
    journal: &mut Option<Vec<(ContactKey, ContactRecord)>>,
    contacts: &ContactTable,
    key: &ContactKey,
    hash: u64,
) {
    if let Some(journal) = journal {
        if let Some(record) = contacts.get(key, hash) {
            journal.push((*key, record));
        }
    }
}

impl ShardState {
    /// Drops cached `Arc`s when the registry replaced something.
    #[inline]
    fn refresh_caches(&mut self, core: &Core) {
        let generation = core.registry.generation();
        if generation != self.cache_generation {
            self.numbers.clear();
            self.templates.clear();
            self.cache_generation = generation;
        }
    }
}

// The lookups below borrow one cache only, so a decision can hold a number and a template
// while it updates contacts; returning references (not `Arc` clones) keeps shards from
// bouncing the shared reference counts between cores on every message.

#[inline]
fn cached_number<'a>(
    cache: &'a mut MixHashMap<PhoneNumberId, Arc<NumberState>>,
    core: &Core,
    id: PhoneNumberId,
) -> Option<&'a Arc<NumberState>> {
    match cache.entry(id) {
        std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            Some(entry.insert(core.registry.number(id)?))
        }
    }
}

/// The shard's cache key for a template: the name and language a word at a time, their
/// lengths mixed in so that no two pairs read alike. (The registry's `template_key_hash` goes a
/// byte at a time, and names templates on disk, so it stays as it is; this one is only ever in
/// memory.) A collision costs a registry look-up: [`Template::is`] settles which one it is.
fn template_cache_key(account: u64, name: &str, language: &str) -> u64 {
    let lengths = (name.len() as u64) << 32 | language.len() as u64;
    let mut hash = crate::hash::mix64(account ^ crate::hash::mix64(lengths));
    for chunk in name
        .as_bytes()
        .chunks(8)
        .chain(language.as_bytes().chunks(8))
    {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = crate::hash::mix64(hash ^ u64::from_le_bytes(word));
    }
    hash
}

#[inline]
fn cached_template<'a>(
    cache: &'a mut MixHashMap<u64, Arc<Template>>,
    core: &Core,
    account: AccountId,
    name: &str,
    language: &str,
) -> Option<&'a Arc<Template>> {
    let hash = template_cache_key(account.0, name, language);
    let hit = cache
        .get(&hash)
        .is_some_and(|t| t.is(account.0, name, language));
    if !hit {
        cache.insert(hash, core.registry.template(account, name, language)?);
    }
    cache.get(&hash)
}

/// The business's consent for `person`, from a record they have with another of the business's
/// numbers (all of them carry the same), for a record of `number` about to be created.
///
/// The person's records with any number sit in one probe run, so this costs what the miss
/// did, plus a registry look-up only when they have a record with some other number.
fn business_consent(
    contacts: &ContactTable,
    core: &Core,
    number: &NumberState,
    person: u64,
    person_hash: u64,
) -> Option<ContactRecord> {
    let mut others = contacts
        .numbers_of(person, person_hash)
        .filter(|(scope, _)| *scope != number.index)
        .peekable();
    others.peek()?;
    let business = core.registry.consent_sharers(number);
    if !core.registry.has_consent_per_number() {
        return others
            .find(|(scope, _)| business.binary_search(scope).is_ok())
            .map(|(_, record)| record);
    }
    // Some numbers keep consent their own: the business's consent comes from a number that
    // shares it, and Meta's marketing stop (the business's whatever the scope) from any.
    let every = core.registry.every_number_of(number.account);
    let mut shared = None;
    let mut meta_stopped = false;
    for (scope, record) in others {
        if business.binary_search(&scope).is_ok() && shared.is_none() {
            shared = Some(record);
        }
        meta_stopped |=
            every.binary_search(&scope).is_ok() && record.has(flags::META_MARKETING_STOPPED);
    }
    let mut consent = shared.unwrap_or_default();
    consent.set(flags::META_MARKETING_STOPPED, meta_stopped);
    (shared.is_some() || meta_stopped).then_some(consent)
}

/// After the consent in `consent` (the person's record with `number`) changed: the same goes
/// into every record the person has with the business's other numbers, journaled.
fn share_consent(
    contacts: &mut ContactTable,
    journal: &mut Option<Vec<(ContactKey, ContactRecord)>>,
    core: &Core,
    number: &NumberState,
    person: u64,
    consent: &ContactRecord,
) {
    let person_hash = crate::hash::mix64(person);
    let others: Vec<u32> = contacts
        .numbers_of(person, person_hash)
        .map(|(scope, _)| scope)
        .filter(|scope| *scope != number.index)
        .collect();
    if others.is_empty() {
        return;
    }
    let business = core.registry.consent_sharers(number);
    let every = core
        .registry
        .has_consent_per_number()
        .then(|| core.registry.every_number_of(number.account));
    let meta_stopped = consent.has(flags::META_MARKETING_STOPPED);
    for scope in others {
        let key = ContactKey { person, scope };
        let hash = key.table_hash(person_hash);
        if business.binary_search(&scope).is_ok() {
            contacts.update(&key, hash, |record| record.copy_consent(consent));
        } else if every
            .as_ref()
            .is_some_and(|every| every.binary_search(&scope).is_ok())
        {
            // A number of the business whose consent is its own: Meta's stop reaches it all
            // the same (Meta's word is the business's).
            contacts.update(&key, hash, |record| {
                record.set(flags::META_MARKETING_STOPPED, meta_stopped)
            });
        } else {
            continue;
        }
        journal_note(journal, contacts, &key, hash);
    }
}

#[inline]
fn shard_scope<'a>(
    scopes: &'a mut MixHashMap<u32, ShardScope>,
    scope: &Arc<LimitScope>,
    shard: usize,
    shards: usize,
) -> &'a mut ShardScope {
    scopes.entry(scope.key).or_insert_with(|| ShardScope {
        scope: scope.clone(),
        expiry: ExpiryQueue::default(),
        front_due: u32::MAX,
        sketch: ShardSketch::new(shard, shards),
    })
}
