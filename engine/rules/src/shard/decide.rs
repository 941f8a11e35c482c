//! Deciding one send: content, window, consent, restriction, pacing, the limit, then commit.
//!
//! Hot file. Rules: no allocation, no lock, no I/O; shared state through atomics only. Every
//! check that can say "no" or "later" runs before anything is changed, and the two reservations
//! (limit capacity, throughput slot) are taken last and undone if the other fails, so a refused
//! or deferred request leaves no trace.

use super::{business_consent, cached_number, cached_template, journal_note, shard_scope, Shard};
use crate::clock::{month_of, Secs, Timestamp};
use crate::decision::{Accepted, Decision, DeferReason, Message, Refusal, SendRequest};
use crate::hash::mix64;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::number::NumberState;
use crate::price::{Ledger, Quote};
use crate::shard_context::Core;
use crate::shard_context::{LIMIT_WINDOW_SECS, MAX_CAPTION_CHARS};
use crate::state::contact::{flags, ContactRecord};
use crate::state::contact_table::ContactKey;
use crate::template::model::Category;
use crate::time_zones::utc_offset_minutes;
use crate::topics::TopicSet;

fn defer(until: Secs, reason: DeferReason) -> Decision {
    Decision::Deferred {
        until: Timestamp::from_secs(until),
        reason,
    }
}

impl Shard {
    /// When a send to be queued for `number`'s throughput should be decided again.
    pub fn queue_turn(&mut self, number: PhoneNumberId, now: Timestamp) -> Option<Timestamp> {
        let core = &*self.core;
        self.state.refresh_caches(core);
        let number = cached_number(&mut self.state.numbers, core, number)?;
        Some(number.throughput.queue_turn(now, core.horizon_micros))
    }

    /// How long a template send lives once it may go (its template's time-to-live, Meta's
    /// `message_send_ttl_seconds`); `None` for other messages or a template wagate lacks.
    pub fn template_ttl_secs(&mut self, request: &SendRequest) -> Option<u32> {
        let Message::Template(send) = &request.message else {
            return None;
        };
        let core = &*self.core;
        let state = &mut self.state;
        state.refresh_caches(core);
        let account = cached_number(&mut state.numbers, core, request.number)?.account;
        let template = cached_template(
            &mut state.templates,
            core,
            account,
            &send.name,
            &send.language,
        )?;
        Some(template.definition.ttl_secs())
    }

    pub fn decide(&mut self, request: &SendRequest, now: Timestamp) -> Decision {
        // Its time first: a send past its validity is never sent late, one scheduled for
        // later is not judged before then (the rules of its time apply).
        if request.options.expire_at.is_some_and(|at| now >= at) {
            return Decision::Refused(Refusal::Expired);
        }
        if let Some(send_at) = request.options.send_at.filter(|at| *at > now) {
            return Decision::Deferred {
                until: send_at,
                reason: DeferReason::Scheduled,
            };
        }
        let core = &*self.core;
        let state = &mut self.state;
        let secs = now.secs();
        state.refresh_caches(core);
        let Some(number) = cached_number(&mut state.numbers, core, request.number) else {
            return Decision::Refused(Refusal::UnknownNumber(request.number));
        };

        // The consent topics a template needs: its category's and the one it names.
        let mut topics = TopicSet(0);
        let (category, is_template) = match &request.message {
            Message::Template(send) => {
                let Some(template) = cached_template(
                    &mut state.templates,
                    core,
                    number.account,
                    &send.name,
                    &send.language,
                ) else {
                    return Decision::Refused(Refusal::TemplateNotFound {
                        name: send.name.clone(),
                        language: send.language.clone(),
                    });
                };
                if let Err(refusal) = template.check_send(&core.profile.templates, send, secs) {
                    return Decision::Refused(refusal);
                }
                let category = template.category();
                let named = template
                    .definition
                    .topic
                    .as_deref()
                    .map_or(TopicSet(0), |topic| {
                        core.registry.topic_names().topic(topic).unwrap_or_default()
                    });
                topics = TopicSet::of_category(category)
                    .union(named)
                    .union(request.options.topic);
                (category, true)
            }
            Message::Text { body } => {
                let chars = body.chars().count();
                if chars > core.profile.max_text_chars as usize {
                    return Decision::Refused(Refusal::TextTooLong {
                        limit: core.profile.max_text_chars,
                        got: chars,
                    });
                }
                (Category::Service, false)
            }
            Message::Media { caption, .. } => {
                let chars = caption.as_deref().map_or(0, |c| c.chars().count());
                if chars > MAX_CAPTION_CHARS {
                    return Decision::Refused(Refusal::TextTooLong {
                        limit: MAX_CAPTION_CHARS as u32,
                        got: chars,
                    });
                }
                (Category::Service, false)
            }
            Message::Interactive | Message::Other => (Category::Service, false),
        };

        if request.to.is_group() {
            // A group: its participants joined it, their consent and the group's own window
            // are checked before the shards (`Wagate::screen_group`), and it counts toward no
            // person's limit or pacing. Left here: the templates a group takes, the number's
            // restriction for what the business starts, a throughput slot, and the price.
            if is_template {
                if let Err(refusal) = core.profile.groups.check_template_category(category) {
                    return Decision::Refused(Refusal::Group(refusal));
                }
                let restricted_until = number.restricted_until();
                if secs < restricted_until {
                    return defer(restricted_until, DeferReason::Restricted);
                }
            }
            let send_at = match number.throughput.reserve(now, core.horizon_micros) {
                Ok(slot) => slot,
                Err(retry) => {
                    return Decision::Deferred {
                        until: retry,
                        reason: DeferReason::Throughput,
                    }
                }
            };
            let priced = Priced {
                category,
                business_initiated: is_template,
                free_entry: false,
            };
            let quote = priced.book(core, &mut state.ledger, number, request.to, now);
            return Decision::Accepted(Accepted {
                category,
                business_initiated: is_template,
                new_unique_recipient: false,
                price_micros: quote.micros,
                market: quote.market,
                send_at,
                consent_at: 0,
            });
        }

        let person = request.to.digits();
        let person_hash = mix64(person);
        let key = ContactKey {
            person,
            scope: number.index,
        };
        let table_hash = key.table_hash(person_hash);
        let existing = state.contacts.get(&key, table_hash);
        let mut record = existing.unwrap_or_default();
        if record.has(flags::BLOCKED) {
            return Decision::Refused(Refusal::BlockedByBusiness);
        }
        let business_initiated = !record.window_open(secs);
        if business_initiated && !is_template {
            return Decision::Refused(Refusal::OutsideServiceWindow);
        }
        if is_template {
            // Consent belongs to the business: a person new to this number brings what they
            // gave (or withdrew) through its other numbers.
            if existing.is_none() {
                if let Some(other) =
                    business_consent(&state.contacts, core, number, person, person_hash)
                {
                    record.copy_consent(&other);
                }
            }
            if let Some(refusal) = withdrawal_refusal(&record, category, topics) {
                return Decision::Refused(refusal);
            }
        }
        if business_initiated {
            if let Some(refusal) = opt_in_refusal(&record) {
                return Decision::Refused(refusal);
            }
            let restricted_until = number.restricted_until();
            if secs < restricted_until {
                return defer(restricted_until, DeferReason::Restricted);
            }
            // Quiet hours hold what the business starts, not a reply to someone writing now.
            if !core.quiet_hours.is_empty() {
                if let Some(quiet) = core.quiet_hours.get(&number.id) {
                    let offset = request
                        .options
                        .utc_offset_minutes
                        .unwrap_or_else(|| utc_offset_minutes(request.to));
                    if let Some(until) = quiet.hold_until(category, now, offset) {
                        return Decision::Deferred {
                            until,
                            reason: DeferReason::QuietHours,
                        };
                    }
                }
            }
        }
        if category == Category::Marketing {
            if secs < record.marketing_cooldown_until {
                return defer(
                    record.marketing_cooldown_until,
                    DeferReason::MarketingCooldown,
                );
            }
            if let Err(until) = core.marketing_cap.check(&record, secs) {
                return defer(until, DeferReason::MarketingCap);
            }
        }
        if let Err(until) = core.pair_rate.check(&record, secs) {
            return defer(until, DeferReason::PairRate);
        }

        // The limit: a recipient already counted in the last 24 h costs nothing again.
        let scope = &number.scope;
        let mut new_unique = false;
        let mut last_counted: Secs = 0;
        if business_initiated {
            scope.apply_due(&core.profile, secs);
            let part = shard_scope(&mut state.scopes, scope, state.index, core.shards);
            part.expire(&state.contacts, state.index, secs);
            last_counted = if scope.key == number.index {
                record.last_business_initiated
            } else {
                let scope_key = ContactKey {
                    person,
                    scope: scope.key,
                };
                state
                    .contacts
                    .get(&scope_key, scope_key.table_hash(person_hash))
                    .map_or(0, |r| r.last_business_initiated)
            };
            let repeat = last_counted != 0 && secs < last_counted + LIMIT_WINDOW_SECS;
            if !repeat {
                if !scope.try_admit(core.profile.tier_limit(scope.tier()))
                    && !scope.try_borrow_due(state.index, secs)
                {
                    // Capacity frees when the oldest counted recipient ages out. If that moment
                    // has passed on another shard and its recipients were all lent, that shard
                    // releases more within its next round: ask again in a second, never "now".
                    let until = scope.next_expiry().map_or(secs + 1, |at| at.max(secs + 1));
                    return defer(until, DeferReason::TierLimit);
                }
                new_unique = true;
            }
        }

        let send_at = match number.throughput.reserve(now, core.horizon_micros) {
            Ok(slot) => slot,
            Err(retry) => {
                if new_unique {
                    scope.release(1);
                }
                return Decision::Deferred {
                    until: retry,
                    reason: DeferReason::Throughput,
                };
            }
        };

        // Commit: from here on nothing can refuse.
        let consent = record;
        // A failure of the send that took the slot gives it back only if no other counted
        // send shares its second (see `Shard::send_failed`).
        let count_in = |counted: &mut ContactRecord| {
            counted.last_business_initiated = secs;
            counted.set(flags::SHARED_COUNT, !new_unique && last_counted == secs);
        };
        let counted_here = business_initiated && scope.key == number.index;
        let free_entry = state.contacts.update(&key, table_hash, |record| {
            if existing.is_none() {
                record.copy_consent(&consent);
            }
            core.pair_rate.record(record, secs);
            let free_entry = record.free_entry_point(secs);
            if category == Category::Marketing {
                core.marketing_cap.record(record, secs);
            }
            if counted_here {
                count_in(record);
            }
            free_entry
        });
        if business_initiated {
            if !counted_here {
                let scope_key = ContactKey {
                    person,
                    scope: scope.key,
                };
                let scope_hash = scope_key.table_hash(person_hash);
                state.contacts.update(&scope_key, scope_hash, count_in);
                journal_note(&mut state.journal, &state.contacts, &scope_key, scope_hash);
            }
            let part = shard_scope(&mut state.scopes, scope, state.index, core.shards);
            part.record(
                &state.contacts,
                state.index,
                person,
                person_hash,
                secs,
                last_counted,
            );
            state.earliest_due = state.earliest_due.min(part.front_due);
            if new_unique {
                scope.consider_upgrade(&core.profile, secs);
            }
        }
        journal_note(&mut state.journal, &state.contacts, &key, table_hash);
        let priced = Priced {
            category,
            business_initiated,
            free_entry,
        };
        let quote = priced.book(core, &mut state.ledger, number, request.to, now);
        Decision::Accepted(Accepted {
            category,
            business_initiated,
            new_unique_recipient: new_unique,
            price_micros: quote.micros,
            market: quote.market,
            send_at,
            consent_at: consent.consent_at,
        })
    }
}

/// What prices an accepted send.
struct Priced {
    category: Category,
    business_initiated: bool,
    free_entry: bool,
}

impl Priced {
    /// The send's price on the card in effect at `now`, booked in the shard's ledger.
    #[inline]
    fn book(
        self,
        core: &Core,
        ledger: &mut Ledger,
        number: &NumberState,
        to: Msisdn,
        now: Timestamp,
    ) -> Quote {
        let Priced {
            category,
            business_initiated,
            free_entry,
        } = self;
        // The month only where a card counts by it (most decisions never ask).
        let month = || month_of(now.unix_secs());
        let quote = core.profile.rate_cards.at(now.secs()).quote(
            category,
            business_initiated,
            free_entry,
            to,
            || number.count_service_message(month()),
            |market| number.volume.count(market, category, month()),
        );
        ledger.record(number.id, category, now.secs(), quote);
        quote
    }
}

/// What an opt-out withdrew, for a template inside the window or not: after a global opt-out
/// every template, after the business's or Meta's marketing stop every marketing template.
/// Free-form replies inside the window never get here.
#[inline]
pub(super) fn withdrawal_refusal(
    consent: &ContactRecord,
    category: Category,
    topics: TopicSet,
) -> Option<Refusal> {
    if consent.has(flags::OPTED_OUT) {
        Some(Refusal::OptedOut)
    } else if category == Category::Marketing && consent.marketing_withdrawn() {
        Some(Refusal::MarketingOptedOut)
    } else if consent.has(flags::TOPICS_WITHDRAWN) && consent.withdrawn_topics().intersects(topics)
    {
        Some(Refusal::TopicOptedOut)
    } else {
        None
    }
}

/// What a business-initiated message (outside the window) needs besides: a person Meta can
/// reach, and a recorded opt-in with the business.
#[inline]
pub(super) fn opt_in_refusal(record: &ContactRecord) -> Option<Refusal> {
    if record.has(flags::UNREACHABLE) {
        Some(Refusal::Unreachable)
    } else if !record.has(flags::OPTED_IN) {
        Some(Refusal::NoOptIn)
    } else {
        None
    }
}
