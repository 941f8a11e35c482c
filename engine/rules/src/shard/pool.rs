//! Sender pools: which of a pool's numbers a send goes from, chosen on the person's shard
//! (which holds their records with every number) just before it is decided.
//!
//! Sticky first: the number the person last talked with (their latest window or counted send),
//! since windows and history live per number. Otherwise the healthy number with the most room
//! left under its tier. A number restricted, flagged or rated red is passed over (fail-over);
//! when none is healthy the pool's first is used, and the rules say why it waits. A queued
//! send keeps its pool: released, it stays on its number while that is healthy, else fails
//! over the same way.

use super::Shard;
use crate::clock::{Secs, Timestamp};
use crate::hash::mix64;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::number::NumberState;
use crate::quality::Quality;
use crate::state::contact_table::ContactKey;

fn healthy(number: &NumberState, now: Secs) -> bool {
    number.restricted_until() <= now
        && number.quality() != Quality::Red
        && number.scope.quality() != Quality::Red
        && number.scope.flagged_since().is_none()
}

impl Shard {
    /// The number of pool `pool` (as the registry keeps it) a send to `person` at `now` goes
    /// from (`None`: no such pool, or none of its numbers is registered).
    pub fn pick_from_pool(
        &mut self,
        pool: u16,
        person: Msisdn,
        now: Timestamp,
    ) -> Option<PhoneNumberId> {
        let core = &*self.core;
        let secs = now.secs();
        let numbers: Vec<_> = core
            .registry
            .pool(pool)?
            .iter()
            .filter_map(|id| core.registry.number(*id))
            .collect();
        let digits = person.digits();
        let person_hash = mix64(digits);
        let last_talked = |number: &NumberState| {
            let key = ContactKey {
                person: digits,
                scope: number.index,
            };
            self.state
                .contacts
                .get(&key, key.table_hash(person_hash))
                .map_or(0, |r| r.window_until.max(r.last_business_initiated))
        };
        let healthy_numbers = || numbers.iter().filter(|n| healthy(n, secs));
        let sticky = healthy_numbers()
            .map(|n| (last_talked(n), n.id))
            .filter(|(last, _)| *last > 0)
            .max_by_key(|(last, _)| *last)
            .map(|(_, id)| id);
        let roomiest = || {
            // The first of the roomiest: `max_by_key` keeps the last of equals.
            healthy_numbers()
                .rev()
                .max_by_key(|n| {
                    let limit = core.profile.tier_limit(n.scope.tier()).unwrap_or(u32::MAX);
                    limit.saturating_sub(n.scope.used())
                })
                .map(|n| n.id)
        };
        sticky
            .or_else(roomiest)
            .or_else(|| numbers.first().map(|n| n.id))
    }

    /// For a queued send of pool `pool` released now, picked `number` when it was queued: that
    /// number while it is still one of the pool's and healthy (the person stays where their
    /// send was planned), else the pool's pick now (fail-over).
    pub fn keep_or_pick(
        &mut self,
        pool: u16,
        number: PhoneNumberId,
        person: Msisdn,
        now: Timestamp,
    ) -> Option<PhoneNumberId> {
        let core = &*self.core;
        let still_good = core
            .registry
            .pool(pool)
            .is_some_and(|p| p.contains(&number))
            && core
                .registry
                .number(number)
                .is_some_and(|n| healthy(&n, now.secs()));
        if still_good {
            return Some(number);
        }
        self.pick_from_pool(pool, person, now)
    }
}
