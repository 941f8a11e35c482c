//! Screening one person of a campaign's audience before anything is sent: would the rules let
//! a template of this category and these topics reach them at all (their consent with the
//! business, a block, whether Meta can reach them), and what would it cost now. Changes
//! nothing: the limit, pacing and time are the plan's business, and the send is decided in
//! full when its turn comes.

use super::{business_consent, cached_number, Shard};
use crate::clock::{month_of, Timestamp};
use crate::decision::Refusal;
use crate::hash::mix64;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::state::contact::flags;
use crate::state::contact_table::ContactKey;
use crate::template::model::Category;
use crate::topics::TopicSet;

/// What screening found of one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// Why the rules would refuse them whatever the time (`None`: eligible).
    pub refusal: Option<Refusal>,
    /// What the send would cost at today's prices (micro-dollars).
    pub price_micros: u64,
    /// Outside their window: business-initiated, counted against the limit.
    pub business_initiated: bool,
}

impl Shard {
    /// Screens a template send of `category` naming `topics` from `number` to `person`.
    pub fn screen(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        category: Category,
        topics: TopicSet,
        now: Timestamp,
    ) -> Screened {
        let core = &*self.core;
        let state = &mut self.state;
        state.refresh_caches(core);
        let Some(number) = cached_number(&mut state.numbers, core, number) else {
            return Screened {
                refusal: Some(Refusal::UnknownNumber(number)),
                price_micros: 0,
                business_initiated: false,
            };
        };
        let digits = person.digits();
        let hash = mix64(digits);
        let key = ContactKey {
            person: digits,
            scope: number.index,
        };
        let mut record = state
            .contacts
            .get(&key, key.table_hash(hash))
            .or_else(|| business_consent(&state.contacts, core, number, digits, hash))
            .unwrap_or_default();
        let secs = now.secs();
        let business_initiated = !record.window_open(secs);
        let refusal = if record.has(flags::BLOCKED) {
            Some(Refusal::BlockedByBusiness)
        } else {
            super::decide::withdrawal_refusal(&record, category, topics).or_else(|| {
                business_initiated
                    .then(|| super::decide::opt_in_refusal(&record))
                    .flatten()
            })
        };
        let month = month_of(now.unix_secs());
        let free_entry = record.free_entry_point(secs);
        let quote = core.profile.rate_cards.at(secs).quote(
            category,
            business_initiated,
            free_entry,
            person,
            || number.service_messages(month),
            |market| number.volume.current(market, category, month),
        );
        Screened {
            price_micros: if refusal.is_none() { quote.micros } else { 0 },
            refusal,
            business_initiated,
        }
    }
}
