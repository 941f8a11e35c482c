//! A shard's part in the messaging limit: recording counted sends, expiring them after 24 h,
//! and sliding the sketches.

use std::sync::Arc;

use super::{Shard, ShardScope};
use crate::clock::{Secs, Timestamp};
use crate::hash::mix64;
use crate::scope::LimitScope;
use crate::shard_context::LIMIT_WINDOW_SECS;
use crate::state::contact_table::{ContactKey, ContactTable};

/// Whether `at` is still the person's latest counted send in the scope keyed `scope_key`.
fn is_latest(contacts: &ContactTable, scope_key: u32, person: u64, at: Secs) -> bool {
    let key = ContactKey {
        person,
        scope: scope_key,
    };
    contacts
        .get(&key, key.table_hash(mix64(person)))
        .is_some_and(|r| r.last_business_initiated == at)
}

impl ShardScope {
    /// Applies this shard's expirations due at `now` to the scope's shared count.
    #[inline]
    pub(super) fn expire(&mut self, contacts: &ContactTable, shard: usize, now: Secs) {
        if now < self.front_due {
            return;
        }
        let key = self.scope.key;
        let left = self.expiry.expire(now, LIMIT_WINDOW_SECS, |p, at| {
            is_latest(contacts, key, p, at)
        });
        self.scope.release(left);
        let next = self
            .expiry
            .next_expiry(LIMIT_WINDOW_SECS, |p, at| is_latest(contacts, key, p, at));
        self.front_due = next.map_or(u32::MAX, |(at, _)| at);
        self.scope.publish_next_expiry(shard, next);
    }

    /// Publishes when this shard's next counted recipient leaves the window, after a change
    /// that may have removed the one at the front. Call after [`ShardScope::expire`] at the
    /// same `now`, so nothing due is left: a due time published again could be lent twice.
    pub(super) fn republish(&mut self, contacts: &ContactTable, shard: usize) {
        let key = self.scope.key;
        let next = self
            .expiry
            .next_expiry(LIMIT_WINDOW_SECS, |p, t| is_latest(contacts, key, p, t));
        self.front_due = next.map_or(u32::MAX, |(at, _)| at);
        self.scope.publish_next_expiry(shard, next);
    }

    /// Notes a counted send at `at` whose person was last counted at `previous` (0 if never):
    /// queued for expiry and added to the sketches.
    #[inline]
    pub(super) fn record(
        &mut self,
        contacts: &ContactTable,
        shard: usize,
        person: u64,
        person_hash: u64,
        at: Secs,
        previous: Secs,
    ) {
        // A second send in the same second is already covered by that second's mark.
        if previous != at {
            if self.expiry.is_empty() {
                self.front_due = at + LIMIT_WINDOW_SECS;
                self.scope
                    .publish_next_expiry(shard, Some((self.front_due, 1)));
            }
            self.expiry.push(at, person);
            // Renewing the person at the front moves this shard's next expiry later.
            if previous != 0 && self.expiry.front() == Some((previous, person)) {
                let key = self.scope.key;
                let next = self
                    .expiry
                    .next_expiry(LIMIT_WINDOW_SECS, |p, t| is_latest(contacts, key, p, t));
                self.front_due = next.map_or(u32::MAX, |(at, _)| at);
                self.scope.publish_next_expiry(shard, next);
            }
        }
        self.sketch.insert(&self.scope.sketches, person_hash, at);
    }
}

impl Shard {
    /// Brings this shard's share of `scope` up to `now`: expirations and sketch windows.
    pub fn refresh_scope(&mut self, scope: &Arc<LimitScope>, now: Timestamp) {
        let state = &mut self.state;
        if let Some(part) = state.scopes.get_mut(&scope.key) {
            part.expire(&state.contacts, state.index, now.secs());
            part.sketch.advance(&part.scope.sketches, now.secs());
        }
    }

    /// Applies the expirations due by `now` in every scope, if any is: one comparison when
    /// none is. Workers call it before each group, so a busy shard never holds capacity that
    /// has freed (another shard, at the limit, would refuse a send Meta would take).
    #[inline]
    pub fn expire_due(&mut self, now: Timestamp) {
        let state = &mut self.state;
        let secs = now.secs();
        if secs < state.earliest_due {
            return;
        }
        let mut earliest = u32::MAX;
        for part in state.scopes.values_mut() {
            part.expire(&state.contacts, state.index, secs);
            earliest = earliest.min(part.front_due);
        }
        state.earliest_due = earliest;
    }

    /// This shard's persons whose latest counted send in the scope keyed `scope_key` is at or
    /// after `since`: its part of the exact unique count over that period (a scan, for the
    /// rare moment a projected upgrade must be confirmed).
    pub fn count_counted_since(&self, scope_key: u32, since: Secs) -> u64 {
        self.state
            .contacts
            .iter()
            .filter(|(key, record)| {
                key.scope == scope_key
                    && record.last_business_initiated != 0
                    && record.last_business_initiated >= since
            })
            .count() as u64
    }

    /// This shard's persons counted in the scope keyed `scope_key` by the hour (from `from`,
    /// `hours` of them) of their latest counted send: when each hour's recipients leave the
    /// rolling 24 h (a scan, for an operator's look at a number).
    pub fn counted_by_hour(&self, scope_key: u32, from: Secs, hours: usize) -> Vec<u64> {
        let mut counts = vec![0; hours];
        for (key, record) in self.state.contacts.iter() {
            let at = record.last_business_initiated;
            if key.scope != scope_key || at == 0 || at < from {
                continue;
            }
            if let Some(count) = counts.get_mut(((at - from) / 3_600) as usize) {
                *count += 1;
            }
        }
        counts
    }

    /// Brings every scope this shard has sent to up to `now` (and forgets automated sends an
    /// hour old).
    pub fn tick(&mut self, now: Timestamp) {
        let state = &mut self.state;
        let mut earliest = u32::MAX;
        for part in state.scopes.values_mut() {
            part.expire(&state.contacts, state.index, now.secs());
            part.sketch.advance(&part.scope.sketches, now.secs());
            part.scope.apply_due(&self.core.profile, now.secs());
            earliest = earliest.min(part.front_due);
        }
        state.earliest_due = earliest;
        state.automated.prune(now.secs());
    }
}
