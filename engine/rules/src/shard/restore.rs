//! Bringing a shard back from disk: contact records go back into the table, and everything
//! derived from them (the exact 24 h counts, the expiry queues, the sketches) is rebuilt from
//! each person's last counted send, which is all those structures depend on: a person is in a
//! window exactly when their latest counted send is.

use std::sync::Arc;

use super::{shard_scope, Shard};
use crate::clock::{Secs, Timestamp, SECS_PER_HOUR};
use crate::hash::{mix64, MixHashMap};
use crate::scope::LimitScope;
use crate::shard_context::LIMIT_WINDOW_SECS;
use crate::sketch::windowed::WEEK_HOURS;
use crate::state::contact::ContactRecord;
use crate::state::contact_table::ContactKey;

impl Shard {
    /// Makes room for `contacts` records about to be restored.
    pub fn reserve_contacts(&mut self, contacts: usize) {
        self.state.contacts.reserve(contacts);
    }

    /// Puts persisted records back (before [`Shard::rebuild_limits`]), many at once (faster
    /// than one by one: see `ContactTable::put_many`).
    pub fn restore_contacts(&mut self, records: &[(ContactKey, ContactRecord)]) {
        self.state.contacts.put_many(records);
    }

    /// Rebuilds this shard's share of every scope from the restored records: recipients whose
    /// last counted send is under 24 h old count and are queued to expire; sends of the last
    /// week go into the sketches.
    pub fn rebuild_limits(&mut self, scopes: &MixHashMap<u32, Arc<LimitScope>>, now: Timestamp) {
        let now = now.secs();
        let week = (WEEK_HOURS + 1) * SECS_PER_HOUR;
        let state = &mut self.state;
        let mut sends: Vec<(Secs, u64, u32)> = state
            .contacts
            .iter()
            .filter(|(key, record)| {
                let at = record.last_business_initiated;
                at != 0 && now < at.saturating_add(week) && scopes.contains_key(&key.scope)
            })
            .map(|(key, record)| (record.last_business_initiated, key.person, key.scope))
            .collect();
        sends.sort_unstable();
        let shards = self.core.shards;
        for (at, person, key) in sends {
            let scope = &scopes[&key];
            let part = shard_scope(&mut state.scopes, scope, state.index, shards);
            if now < at + LIMIT_WINDOW_SECS {
                part.expiry.push(at, person);
                scope.try_admit(None);
            }
            part.sketch.insert(&scope.sketches, mix64(person), at);
        }
        for part in state.scopes.values_mut() {
            part.front_due = 0;
            part.expire(&state.contacts, state.index, now);
            part.sketch.advance(&part.scope.sketches, now);
            state.earliest_due = state.earliest_due.min(part.front_due);
        }
    }
}
