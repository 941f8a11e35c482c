//! Contact events on a shard: inbound messages (windows and keyword consent), explicit consent
//! changes and delivery failures.

use super::{cached_number, journal_note, Shard};
use crate::clock::{Secs, Timestamp, SECS_PER_DAY};
use crate::core::NormalizedKeywords;
use crate::decision::Refusal;
use crate::events::{
    ConsentChange, ContactView, FailureEffect, InboundContent, InboundEffect, InboundMessage,
};
use crate::hash::mix64;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::state::contact::{flags, ConsentSource, ContactRecord};
use crate::state::contact_table::ContactKey;

fn classify(
    keywords: &NormalizedKeywords,
    content: &InboundContent,
) -> Option<(ConsentChange, ConsentSource)> {
    let matches = |list: &[String], text: &str| {
        let text = text.trim().to_uppercase();
        list.contains(&text)
    };
    match content {
        InboundContent::Text(text) => {
            if matches(&keywords.opt_out, text) {
                Some((ConsentChange::OptOut, ConsentSource::Keyword))
            } else if matches(&keywords.opt_in, text) {
                Some((ConsentChange::OptIn, ConsentSource::Keyword))
            } else {
                None
            }
        }
        InboundContent::Button { payload } | InboundContent::InteractiveReply { id: payload } => {
            if matches(&keywords.marketing_opt_out_payloads, payload) {
                Some((ConsentChange::MarketingOptOut, ConsentSource::Button))
            } else if matches(&keywords.opt_out_payloads, payload) {
                Some((ConsentChange::OptOut, ConsentSource::Button))
            } else if matches(&keywords.opt_in_payloads, payload) {
                Some((ConsentChange::OptIn, ConsentSource::Button))
            } else {
                None
            }
        }
        InboundContent::Other => None,
    }
}

fn apply_consent(
    record: &mut ContactRecord,
    change: ConsentChange,
    source: ConsentSource,
    now: Secs,
) {
    match change {
        ConsentChange::OptIn => {
            record.set(flags::OPTED_IN, true);
            record.set(flags::OPTED_OUT, false);
            record.set(flags::MARKETING_OPTED_OUT, false);
        }
        ConsentChange::OptOut => {
            record.set(flags::OPTED_OUT, true);
            record.set(flags::OPTED_IN, false);
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
    /// Changes the record of (number, person), created if new, and journals it; `None` if the
    /// number is unknown.
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
        let key = ContactKey {
            person: person.digits(),
            scope: number.index,
        };
        let hash = key.table_hash(mix64(key.person));
        let result = change(state.contacts.get_or_insert(&key, hash));
        journal_note(&mut state.journal, &state.contacts, &key, hash);
        Some(result)
    }

    /// An inbound message opens (or extends) the customer-service window; a keyword or button
    /// payload may also change consent.
    pub fn inbound(
        &mut self,
        message: &InboundMessage,
        now: Timestamp,
    ) -> Result<InboundEffect, Refusal> {
        let consent = classify(&self.core.keywords, &message.content);
        let window = self.core.profile.service_window_secs;
        let secs = now.secs();
        self.with_record(message.number, message.from, |record| {
            record.window_until = secs + window;
            record.set(flags::UNREACHABLE, false);
            if let Some((change, source)) = consent {
                apply_consent(record, change, source, secs);
            }
            InboundEffect {
                window_until: Timestamp::from_secs(record.window_until),
                consent: consent.map(|(change, _)| change),
            }
        })
        .ok_or(Refusal::UnknownNumber(message.number))
    }

    pub fn consent(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.with_record(number, person, |record| {
            apply_consent(record, change, source, now.secs())
        })
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
            _ => FailureEffect::None,
        })
        .ok_or(Refusal::UnknownNumber(number))
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
            state
                .contacts
                .get(&key, key.table_hash(mix64(key.person)))
                .copied()
        };
        let record = lookup(number.index)?;
        let last = lookup(number.scope.key).map_or(0, |r| r.last_business_initiated);
        Some(ContactView {
            window_open_until: time(record.window_until).filter(|_| record.window_open(now.secs())),
            opted_in: record.has(flags::OPTED_IN),
            opted_out: record.has(flags::OPTED_OUT),
            marketing_opted_out: record.has(flags::MARKETING_OPTED_OUT),
            consent_source: record.consent_source(),
            consent_changed_at: time(record.consent_at),
            last_business_initiated: time(last),
            unreachable: record.has(flags::UNREACHABLE),
        })
    }
}
