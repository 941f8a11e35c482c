//! Erasing a person (the law's right to erasure) from a business's numbers.
//!
//! Consent, window, source and whatever else the person's records say go at once. What only
//! counts toward a limit Meta still applies (a counted send holds its slot 24 h, the marketing
//! cap its day) stays until it no longer matters: erasing someone must never let more through
//! than Meta allows. A record left with nothing that matters is the same as none, and is
//! journaled as such (deleted on disk). The disk's other traces (history, messages) are the
//! durable layer's.

use super::{journal_note, Shard};
use crate::clock::Timestamp;
use crate::hash::mix64;
use crate::ids::{AccountId, Msisdn};
use crate::state::contact::ContactRecord;
use crate::state::contact_table::ContactKey;

impl Shard {
    /// Erases `person` from every number of `account` (and its limit scopes). Returns until
    /// when counts kept for Meta's limits last (`None`: nothing kept, every record gone).
    pub fn erase(
        &mut self,
        account: AccountId,
        person: Msisdn,
        now: Timestamp,
    ) -> Option<Timestamp> {
        if let Some(log) = &mut self.state.consent_log {
            // Changes applied in this group are not written yet: they must not be.
            let registry = &self.core.registry;
            log.retain(|event| {
                event.person != person
                    || registry.number(event.number).map(|n| n.account) != Some(account)
            });
        }
        self.erase_records(account, person, now, true)
    }

    /// Finishes an erasure whose counts were kept: deletes the records holding only counts
    /// that no longer matter, and leaves alone any the person has made anew since. Returns
    /// until when the counts still kept last.
    pub fn forget_spent(
        &mut self,
        account: AccountId,
        person: Msisdn,
        now: Timestamp,
    ) -> Option<Timestamp> {
        self.erase_records(account, person, now, false)
    }

    fn erase_records(
        &mut self,
        account: AccountId,
        person: Msisdn,
        now: Timestamp,
        wipe: bool,
    ) -> Option<Timestamp> {
        let state = &mut self.state;
        let mut scopes: Vec<u32> = self
            .core
            .registry
            .numbers()
            .iter()
            .filter(|number| number.account == account)
            .flat_map(|number| [number.index, number.scope.key])
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let digits = person.digits();
        let person_hash = mix64(digits);
        let now_secs = now.secs();
        let mut kept_until = 0;
        for scope in scopes {
            let key = ContactKey {
                person: digits,
                scope,
            };
            let hash = key.table_hash(person_hash);
            let Some(before) = state.contacts.get(&key, hash) else {
                continue;
            };
            let mut after = before;
            if wipe {
                after.keep_only_counts();
            }
            if after.is_spent(now_secs) {
                after = ContactRecord::default();
            } else if after.holds_only_counts() {
                kept_until = kept_until.max(after.counts_matter_until());
            }
            if after != before {
                state.contacts.put(&key, hash, after);
                journal_note(&mut state.journal, &state.contacts, &key, hash);
            }
        }
        (kept_until > now_secs).then(|| Timestamp::from_secs(kept_until))
    }
}
