//! Contact events on a shard: inbound messages (windows and keyword consent), explicit consent
//! changes and delivery failures.

use super::{business_consent, cached_number, journal_note, shard_scope, share_consent, Shard};
use crate::clock::{Secs, Timestamp, SECS_PER_DAY};
use crate::contact_events::{
    ConsentChange, ConsentEvent, ContactView, FailedSend, FailureEffect, FailureReversal,
    InboundEffect, InboundMessage,
};
use crate::decision::Refusal;
use crate::hash::mix64;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::price::Quote;
use crate::shard_context::LIMIT_WINDOW_SECS;
use crate::state::contact::{flags, ConsentSource, ContactRecord};
use crate::state::contact_table::ContactKey;
use crate::topics::TopicSet;

fn apply_consent(
    record: &mut ContactRecord,
    change: ConsentChange,
    source: ConsentSource,
    now: Secs,
) {
    // Meta's marketing stop is Meta's to end: its own signals set and clear their flag, and
    // nothing the business says touches it (a START does not resume what Meta stopped).
    let meta_says = matches!(
        source,
        ConsentSource::UserPreferences | ConsentSource::DeliveryFailure
    );
    match change {
        ConsentChange::OptIn => {
            record.set(flags::OPTED_IN, true);
            record.set(flags::OPTED_OUT, false);
            record.set(flags::MARKETING_OPTED_OUT, false);
            record.set(flags::TOPICS_WITHDRAWN, false);
        }
        ConsentChange::TopicsOptOut(topics) => {
            if topics.intersects(TopicSet::MARKETING) {
                record.set(flags::MARKETING_OPTED_OUT, true);
            }
            record.set_topics_withdrawn(topics, true);
        }
        ConsentChange::TopicsOptIn(topics) => {
            if record.has(flags::OPTED_OUT) {
                // After a global opt-out, consent to these topics alone.
                record.set(flags::OPTED_OUT, false);
                record.set(flags::TOPICS_WITHDRAWN, true);
                record.set(flags::MARKETING_OPTED_OUT, true);
            }
            if topics.intersects(TopicSet::MARKETING) {
                record.set(flags::MARKETING_OPTED_OUT, false);
            }
            record.set_topics_withdrawn(topics, false);
            record.set(flags::OPTED_IN, true);
        }
        ConsentChange::OptOut => {
            record.set(flags::OPTED_OUT, true);
            record.set(flags::OPTED_IN, false);
        }
        ConsentChange::MarketingOptOut if meta_says => {
            record.set(flags::META_MARKETING_STOPPED, true)
        }
        ConsentChange::MarketingOptIn if meta_says => {
            record.set(flags::META_MARKETING_STOPPED, false)
        }
        ConsentChange::MarketingOptOut => record.set(flags::MARKETING_OPTED_OUT, true),
        ConsentChange::MarketingOptIn => record.set(flags::MARKETING_OPTED_OUT, false),
    }
    record.consent_at = now;
    record.consent_source = source as u8;
}

fn time(secs: Secs) -> Option<Timestamp> {
    (secs != 0).then(|| Timestamp::from_secs(secs))
}

impl Shard {
    /// Changes the record of (number, person), created if new (then with the consent the
    /// person has with the business's other numbers), and journals it; if `change` touched
    /// consent, the same goes into the person's records with the business's other numbers.
    /// `None` if the number is unknown.
    fn with_record<T>(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        change: impl FnOnce(&mut ContactRecord) -> T,
    ) -> Option<T> {
        let core = &*self.core;
        let state = &mut self.state;
        state.refresh_caches(core);
        let number = cached_number(&mut state.numbers, core, number)?;
        let person = person.digits();
        let person_hash = mix64(person);
        let key = ContactKey {
            person,
            scope: number.index,
        };
        let hash = key.table_hash(person_hash);
        let inherited = match state.contacts.get(&key, hash) {
            Some(_) => None,
            None => business_consent(&state.contacts, core, number, person, person_hash),
        };
        let (before, result, after) = state.contacts.update(&key, hash, |record| {
            if let Some(other) = inherited {
                record.copy_consent(&other);
            }
            let before = *record;
            let result = change(record);
            (before, result, *record)
        });
        journal_note(&mut state.journal, &state.contacts, &key, hash);
        let consent_changed = (before.flags ^ after.flags) & ContactRecord::CONSENT_FLAGS != 0
            || before.consent_at != after.consent_at
            || before.consent_source != after.consent_source;
        if consent_changed {
            share_consent(
                &mut state.contacts,
                &mut state.journal,
                core,
                number,
                person,
                &after,
            );
        }
        Some(result)
    }

    /// An inbound message opens (or extends) the customer-service window; a keyword or button
    /// payload may also change consent (the business's: through any of its numbers).
    pub fn inbound(
        &mut self,
        message: &InboundMessage,
        now: Timestamp,
    ) -> Result<InboundEffect, Refusal> {
        let consent = self
            .core
            .keywords
            .of(message.number)
            .classify(&message.content);
        let window = self.core.profile.service_window_secs;
        let secs = now.secs();
        let effect = self
            .with_record(message.number, message.from, |record| {
                record.window_until = secs + window;
                record.set(flags::UNREACHABLE, false);
                if message.referral {
                    record.set(flags::FEP_PENDING, true);
                }
                if let Some((change, source)) = consent {
                    apply_consent(record, change, source, secs);
                }
                InboundEffect {
                    window_until: Timestamp::from_secs(record.window_until),
                    consent: consent.map(|(change, _)| change),
                    automations: Default::default(),
                }
            })
            .ok_or(Refusal::UnknownNumber(message.number))?;
        let mut effect = effect;
        if consent.is_none() {
            let fired = self
                .core
                .automations
                .keyword(message.number, &message.content);
            effect.automations = self.admit_automated(message.number, message.from, fired, now);
        }
        if let Some((change, source)) = consent {
            self.log_consent(ConsentEvent {
                number: message.number,
                person: message.from,
                at: now,
                change,
                source,
                evidence: None,
            });
        }
        Ok(effect)
    }

    /// Meta's `status` (`delivered`, `read`, `failed`) of a message of `template` (if a
    /// template) from `number` to `person`: the status automations it sets going, within the
    /// loop bound.
    pub fn follow_status(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        status: &str,
        template: Option<&str>,
        now: Timestamp,
    ) -> crate::contact_events::Automated {
        let fired = self.core.automations.status(number, status, template);
        self.admit_automated(number, person, fired, now)
    }

    /// Of the automations `fired`, those the loop bound lets go to `person` from `number`.
    fn admit_automated(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        fired: Vec<usize>,
        now: Timestamp,
    ) -> crate::contact_events::Automated {
        let mut automated = crate::contact_events::Automated::default();
        for index in fired {
            if self.state.automated.admit(number, person, now.secs()) {
                automated.fired.push(index);
            } else {
                automated.held += 1;
            }
        }
        automated
    }

    pub fn consent(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.consent_with_evidence(number, person, change, source, None, now)
    }

    /// A consent change with the caller's proof, kept in the history beside it.
    pub fn consent_with_evidence(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
        evidence: Option<std::sync::Arc<str>>,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.with_record(number, person, |record| {
            apply_consent(record, change, source, now.secs())
        })
        .ok_or(Refusal::UnknownNumber(number))?;
        self.log_consent(ConsentEvent {
            number,
            person,
            at: now,
            change,
            source,
            evidence,
        });
        Ok(())
    }

    /// Meta says messages to `person` are free until `until` (a free entry point window, which
    /// Meta may have extended): the window here ends no sooner.
    pub fn free_entry_until(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        until: Timestamp,
    ) -> Result<(), Refusal> {
        self.with_record(number, person, |record| {
            record.set(flags::FEP_PENDING, false);
            record.fep_until = record.fep_until.max(until.secs());
        })
        .ok_or(Refusal::UnknownNumber(number))
    }

    /// The business blocked (or unblocked) `person` on `number`, as Meta's block list says.
    pub fn business_block(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        blocked: bool,
    ) -> Result<(), Refusal> {
        self.with_record(number, person, |record| record.set(flags::BLOCKED, blocked))
            .ok_or(Refusal::UnknownNumber(number))
    }

    /// A failure code from Meta for a message to `person`, turned into what it means for them.
    pub fn delivery_failed(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        code: u32,
        now: Timestamp,
    ) -> Result<FailureEffect, Refusal> {
        let secs = now.secs();
        if code == 131_050 && self.core.registry.number(number).is_some() {
            self.log_consent(ConsentEvent {
                number,
                person,
                at: now,
                change: ConsentChange::MarketingOptOut,
                source: ConsentSource::DeliveryFailure,
                evidence: None,
            });
        }
        self.with_record(number, person, |record| match code {
            131_050 => {
                apply_consent(
                    record,
                    ConsentChange::MarketingOptOut,
                    ConsentSource::DeliveryFailure,
                    secs,
                );
                FailureEffect::MarketingOptedOut
            }
            131_049 => {
                record.marketing_cooldown_until = secs + SECS_PER_DAY;
                FailureEffect::MarketingCooldown {
                    until: Timestamp::from_secs(record.marketing_cooldown_until),
                }
            }
            131_026 => {
                record.set(flags::UNREACHABLE, true);
                FailureEffect::Unreachable
            }
            130_403 => {
                record.set(flags::BLOCKED, true);
                FailureEffect::Blocked
            }
            _ => FailureEffect::None,
        })
        .ok_or(Refusal::UnknownNumber(number))
    }

    /// Takes back what a send that failed for good took: its price from the ledger (Meta
    /// charges neither refused nor undelivered messages) and, if it was the send that counted
    /// its recipient and no later counted send renewed them, the recipient's slot in the
    /// rolling 24 h (Meta does not count a recipient nothing was delivered to). Reserving
    /// the slot at acceptance is what prevents overshoot; this gives it back. `None` if the
    /// number is unknown.
    pub fn send_failed(&mut self, failed: &FailedSend, now: Timestamp) -> Option<FailureReversal> {
        let core = &*self.core;
        let state = &mut self.state;
        state.refresh_caches(core);
        let number = cached_number(&mut state.numbers, core, failed.number)?;
        let accepted = &failed.accepted;
        let at = failed.accepted_at.secs();
        let quote = Quote {
            micros: accepted.price_micros,
            market: core.profile.rate_cards.market_at(at, failed.to),
        };
        state
            .ledger
            .reverse(number.id, accepted.category, at, quote);
        let mut reversal = FailureReversal {
            slot_released: false,
        };
        let secs = now.secs();
        // A recipient already due to leave the window is left to its expiry: that due time
        // may have been lent to another shard's admission (`LimitScope::try_borrow_due`).
        if !(accepted.business_initiated && accepted.new_unique_recipient)
            || secs >= at.saturating_add(LIMIT_WINDOW_SECS)
        {
            return Some(reversal);
        }
        let scope = &number.scope;
        let person = failed.to.digits();
        let key = ContactKey {
            person,
            scope: scope.key,
        };
        let hash = key.table_hash(mix64(person));
        let holds_slot = state.contacts.get(&key, hash).is_some_and(|counted| {
            counted.last_business_initiated == at && !counted.has(flags::SHARED_COUNT)
        });
        if !holds_slot {
            return Some(reversal);
        }
        let part = shard_scope(&mut state.scopes, scope, state.index, core.shards);
        // Whatever is due goes first, so the republication below names nothing due.
        part.expire(&state.contacts, state.index, secs);
        part.expiry.forget(at, person);
        state
            .contacts
            .update(&key, hash, |counted| counted.last_business_initiated = 0);
        journal_note(&mut state.journal, &state.contacts, &key, hash);
        part.republish(&state.contacts, state.index);
        scope.release(1);
        reversal.slot_released = true;
        Some(reversal)
    }

    /// What the shard knows of (number, person), without creating anything.
    pub fn contact(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        now: Timestamp,
    ) -> Option<ContactView> {
        let core = &*self.core;
        let state = &mut self.state;
        state.refresh_caches(core);
        let number = cached_number(&mut state.numbers, core, number)?;
        let lookup = |scope: u32| {
            let key = ContactKey {
                person: person.digits(),
                scope,
            };
            state.contacts.get(&key, key.table_hash(mix64(key.person)))
        };
        // Never seen through this number: what they gave the business through another.
        let record = match lookup(number.index) {
            Some(record) => record,
            None => {
                let person = person.digits();
                let other = business_consent(&state.contacts, core, number, person, mix64(person))?;
                let mut record = ContactRecord::default();
                record.copy_consent(&other);
                record
            }
        };
        let last = lookup(number.scope.key).map_or(0, |r| r.last_business_initiated);
        Some(ContactView {
            window_open_until: time(record.window_until).filter(|_| record.window_open(now.secs())),
            opted_in: record.has(flags::OPTED_IN),
            opted_out: record.has(flags::OPTED_OUT),
            marketing_opted_out: record.has(flags::MARKETING_OPTED_OUT),
            meta_marketing_stopped: record.has(flags::META_MARKETING_STOPPED),
            consent_source: record.consent_source(),
            consent_changed_at: time(record.consent_at),
            last_business_initiated: time(last),
            unreachable: record.has(flags::UNREACHABLE),
            blocked: record.has(flags::BLOCKED),
            withdrawn_topics: record.withdrawn_topics(),
        })
    }
}
