//! The in-memory index of queued sends: (due time, id) of every record in the `deferred`
//! family, so the releaser finds what came due and a status read finds a queued message by
//! id with point reads, instead of scanning a family whose head is full of the tombstones of
//! everything already released.
//!
//! Built from one scan at start-up; afterwards fed by the shard workers once a commit that
//! queued something is durable, and drained by the releaser.
//!
//! Both halves are ordered maps, not a hash map: ids are handed out in order and most sends are
//! queued for a time after the ones before them, so a burst of queued sends appends at the
//! maps' right edges, where a hash map doubled and rehashed (page faults over its whole table)
//! as a bulk upload queued millions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::deferred::DeferredRecord;
use wagate_rules::clock::Timestamp;
use wagate_store::{Family, Store, StoreError};

#[derive(Default)]
struct Index {
    by_due: BTreeSet<(u64, u64)>,
    due_of: BTreeMap<u64, u64>,
}

impl Index {
    fn insert(&mut self, due: Timestamp, id: u64) {
        if let Some(old) = self.due_of.insert(id, due.0) {
            self.by_due.remove(&(old, id));
        }
        self.by_due.insert((due.0, id));
    }
}

#[derive(Default)]
pub struct ReleaseQueue {
    index: Mutex<Index>,
}

impl ReleaseQueue {
    /// The index of every record in `store`'s `deferred` family (one scan, at start-up).
    pub fn load(store: &dyn Store) -> Result<ReleaseQueue, StoreError> {
        let mut index = Index::default();
        store.scan(Family::Deferred, &[], &[0xff; 17], &mut |key, _| {
            if let Some((due, id)) = DeferredRecord::key_parts(key) {
                index.insert(due, id);
            }
            true
        })?;
        Ok(ReleaseQueue {
            index: Mutex::new(index),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record written under (`due`, `id`); a message queued again replaces its old entry.
    pub fn insert(&self, due: Timestamp, id: u64) {
        self.index().insert(due, id);
    }

    /// [`ReleaseQueue::insert`] for each of a commit's queued sends, under one lock.
    pub fn insert_all(&self, entries: impl IntoIterator<Item = (Timestamp, u64)>) {
        let mut index = self.index();
        for (due, id) in entries {
            index.insert(due, id);
        }
    }

    /// Takes a queued send out of the index (its record deleted, or about to be: an erasure,
    /// its sender's cancel or new time); its due time, if it was there. Whoever takes an entry
    /// (this, or [`ReleaseQueue::take_due`]) owns the send: it is released or withdrawn, never
    /// both.
    pub fn remove(&self, id: u64) -> Option<Timestamp> {
        let mut index = self.index();
        let due = index.due_of.remove(&id)?;
        index.by_due.remove(&(due, id));
        Some(Timestamp(due))
    }

    /// Puts back an entry taken, unless the message was queued anew meanwhile.
    pub fn insert_if_absent(&self, due: Timestamp, id: u64) {
        let mut index = self.index();
        if let std::collections::btree_map::Entry::Vacant(entry) = index.due_of.entry(id) {
            entry.insert(due.0);
            index.by_due.insert((due.0, id));
        }
    }

    /// Takes up to `limit` entries due by `now`, earliest first.
    pub fn take_due(&self, now: Timestamp, limit: usize) -> Vec<(Timestamp, u64)> {
        let mut index = self.index();
        let mut taken = Vec::new();
        while taken.len() < limit {
            match index.by_due.first() {
                Some(&(due, id)) if due <= now.0 => {
                    index.by_due.pop_first();
                    index.due_of.remove(&id);
                    taken.push((Timestamp(due), id));
                }
                _ => break,
            }
        }
        taken
    }

    /// When the queued message `id` is due, if it is queued.
    pub fn due_of(&self, id: u64) -> Option<Timestamp> {
        self.index().due_of.get(&id).copied().map(Timestamp)
    }

    pub fn len(&self) -> usize {
        self.index().by_due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_earliest_first_and_a_requeue_replaces_the_old_entry() {
        let queue = ReleaseQueue::default();
        queue.insert(Timestamp(30), 3);
        queue.insert(Timestamp(10), 1);
        queue.insert(Timestamp(20), 2);
        queue.insert(Timestamp(50), 1);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.due_of(1), Some(Timestamp(50)));
        assert_eq!(
            queue.take_due(Timestamp(30), 10),
            vec![(Timestamp(20), 2), (Timestamp(30), 3)]
        );
        assert_eq!(queue.take_due(Timestamp(60), 0), vec![]);
        assert_eq!(queue.due_of(2), None);
        assert_eq!(queue.take_due(Timestamp(60), 10), vec![(Timestamp(50), 1)]);
        assert!(queue.is_empty());
    }
}
