//! What the core remembers about one person for one business number (or, for the
//! portfolio-wide limit, one limit scope): 32 bytes, times in compact seconds.
//!
//! Consent belongs to the business (the WABA), the window to the number: every record a person
//! has with the numbers of one business carries the same consent (a change is written to all
//! of them, a new one takes it from another), so a decision reads one record. A number whose
//! tenant chose per-number scope keeps its people's consent its own
//! (`Registry::consent_sharers`).

use crate::clock::{Secs, SECS_PER_DAY};
use crate::topics::TopicSet;

/// Where a consent change came from; kept with its time for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ConsentSource {
    #[default]
    None = 0,
    /// The sender's own API call (web form, IVR, paper... collected outside WhatsApp).
    Api = 1,
    /// A keyword such as STOP or START typed in the chat.
    Keyword = 2,
    /// A quick-reply or interactive button payload.
    Button = 3,
    /// Meta's `user_preferences` webhook (marketing stop / resume).
    UserPreferences = 4,
    /// A send failed with 131050 (the person stopped marketing messages).
    DeliveryFailure = 5,
    /// Collected outside WhatsApp and told through the API, as the caller names it: a web
    /// form, an SMS, an IVR call, in person, on paper.
    WebForm = 6,
    Sms = 7,
    Ivr = 8,
    InPerson = 9,
    Paper = 10,
}

impl ConsentSource {
    pub fn from_u8(value: u8) -> ConsentSource {
        match value {
            1 => ConsentSource::Api,
            2 => ConsentSource::Keyword,
            3 => ConsentSource::Button,
            4 => ConsentSource::UserPreferences,
            5 => ConsentSource::DeliveryFailure,
            6 => ConsentSource::WebForm,
            7 => ConsentSource::Sms,
            8 => ConsentSource::Ivr,
            9 => ConsentSource::InPerson,
            10 => ConsentSource::Paper,
            _ => ConsentSource::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConsentSource::None => "none",
            ConsentSource::Api => "api",
            ConsentSource::Keyword => "keyword",
            ConsentSource::Button => "button",
            ConsentSource::UserPreferences => "user_preferences",
            ConsentSource::DeliveryFailure => "delivery_failure",
            ConsentSource::WebForm => "web_form",
            ConsentSource::Sms => "sms",
            ConsentSource::Ivr => "ivr",
            ConsentSource::InPerson => "in_person",
            ConsentSource::Paper => "paper",
        }
    }

    /// A source a caller of the consent API may name.
    pub fn of_caller(name: &str) -> Option<ConsentSource> {
        Some(match name {
            "api" => ConsentSource::Api,
            "web_form" => ConsentSource::WebForm,
            "sms" => ConsentSource::Sms,
            "ivr" => ConsentSource::Ivr,
            "in_person" => ConsentSource::InPerson,
            "paper" => ConsentSource::Paper,
            _ => return None,
        })
    }
}

pub mod flags {
    /// A recorded opt-in for business-initiated messages.
    pub const OPTED_IN: u16 = 1;
    /// A global opt-out: nothing business-initiated until the next opt-in.
    pub const OPTED_OUT: u16 = 1 << 1;
    /// The business's own marketing opt-out (a "stop promotions" button, its API): marketing
    /// templates are refused (131050), in the window or not; a START clears it.
    pub const MARKETING_OPTED_OUT: u16 = 1 << 2;
    /// Meta said the number cannot receive WhatsApp messages (131026), until they write to us.
    pub const UNREACHABLE: u16 = 1 << 3;
    /// Meta's marketing stop (`user_preferences` stop, or a 131050 refusal): Meta refuses
    /// marketing templates in the window or not, until its `resume`; the business's own
    /// keywords do not end it.
    pub const META_MARKETING_STOPPED: u16 = 1 << 4;
    /// The latest counted send to this person in the scope shared its second with another
    /// counted send, so a failure of one cannot tell which of them holds the slot.
    pub const SHARED_COUNT: u16 = 1 << 5;
    /// The business blocked this person on this number (Meta's block list, or Meta's 130403):
    /// nothing goes to them from it, in the window or not, until the business unblocks them.
    pub const BLOCKED: u16 = 1 << 6;
    /// They came from an ad's (or a page's) referral and the business has not replied yet: its
    /// reply inside the window opens a free entry point window.
    pub const FEP_PENDING: u16 = 1 << 7;
    /// Topics withdrawn (utility, authentication, the operator's named ones): a
    /// [`TopicSet`](crate::topics::TopicSet) without marketing, shifted into the high byte.
    pub const TOPICS_WITHDRAWN: u16 = 0xFE00;
}

/// A free entry point window lasts 72 h from the business's reply (Meta may say longer).
pub const FEP_SECS: Secs = 72 * 3_600;

/// A person's state for one key. `0` in a time field means "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ContactRecord {
    /// The customer-service window is open while `now < window_until`.
    pub window_until: Secs,
    /// The last business-initiated send counted against the limit of this key's scope.
    pub last_business_initiated: Secs,
    /// Pair pacing: the GCRA theoretical arrival time.
    pub pair_tat: Secs,
    /// When consent last changed.
    pub consent_at: Secs,
    /// No marketing before this (WhatsApp's per-user marketing limit, 131049).
    pub marketing_cooldown_until: Secs,
    /// The two most recent marketing sends, newest first: enough for a cap of 1 or 2 a day.
    pub marketing_sends: [Secs; 2],
    /// Messages to them are free until this (a free entry point window), as wagate opened
    /// it or Meta said.
    pub fep_until: Secs,
    pub flags: u16,
    pub consent_source: u8,
    pub(crate) _reserved: u8,
}

impl ContactRecord {
    #[inline]
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    #[inline]
    pub fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    #[inline]
    pub fn window_open(&self, now: Secs) -> bool {
        now < self.window_until
    }

    /// Whether a message sent now is free as inside a free entry point window: the business's
    /// first reply after a referral, inside the window, opens one for [`FEP_SECS`].
    #[inline]
    pub fn free_entry_point(&mut self, now: Secs) -> bool {
        if self.has(flags::FEP_PENDING) {
            self.set(flags::FEP_PENDING, false);
            if self.window_open(now) {
                self.fep_until = self.fep_until.max(now + FEP_SECS);
            }
        }
        now < self.fep_until
    }

    pub fn consent_source(&self) -> ConsentSource {
        ConsentSource::from_u8(self.consent_source)
    }

    /// The flags that are the business's consent (not the number's window, reachability...).
    pub const CONSENT_FLAGS: u16 = flags::OPTED_IN
        | flags::OPTED_OUT
        | flags::MARKETING_OPTED_OUT
        | flags::META_MARKETING_STOPPED
        | flags::TOPICS_WITHDRAWN;

    /// Every topic withdrawn, marketing included (by the business's opt-out or Meta's stop).
    #[inline]
    pub fn withdrawn_topics(&self) -> TopicSet {
        let kept = TopicSet(((self.flags & flags::TOPICS_WITHDRAWN) >> 8) as u8);
        if self.marketing_withdrawn() {
            kept.union(TopicSet::MARKETING)
        } else {
            kept
        }
    }

    /// Withdraws (`on`) or resumes `topics` other than marketing.
    pub fn set_topics_withdrawn(&mut self, topics: TopicSet, on: bool) {
        self.set(u16::from(topics.kept().0) << 8, on);
    }

    /// Takes the business's consent (flags, time, source) from another record of the person.
    #[inline]
    pub fn copy_consent(&mut self, from: &ContactRecord) {
        self.flags = (self.flags & !Self::CONSENT_FLAGS) | (from.flags & Self::CONSENT_FLAGS);
        self.consent_at = from.consent_at;
        self.consent_source = from.consent_source;
    }

    /// Erasure: forgets consent, window, source and everything the person said, keeping only
    /// what a limit Meta still applies counts (the last counted send, pair pacing, the
    /// marketing cap) so that erasing someone never lets more through than Meta allows.
    pub fn keep_only_counts(&mut self) {
        *self = ContactRecord {
            last_business_initiated: self.last_business_initiated,
            pair_tat: self.pair_tat,
            marketing_cooldown_until: self.marketing_cooldown_until,
            marketing_sends: self.marketing_sends,
            flags: self.flags & flags::SHARED_COUNT,
            ..ContactRecord::default()
        };
    }

    /// Until when the counts kept by [`ContactRecord::keep_only_counts`] still matter: a
    /// counted send holds its slot 24 h, a marketing send the per-person cap 24 h.
    pub fn counts_matter_until(&self) -> Secs {
        let day_after = |at: Secs| {
            if at == 0 {
                0
            } else {
                at.saturating_add(SECS_PER_DAY)
            }
        };
        day_after(self.last_business_initiated)
            .max(day_after(self.marketing_sends[0]))
            .max(self.marketing_cooldown_until)
            .max(self.pair_tat)
    }

    /// Whether nothing but counts that no longer matter at `now` is left: such a record is the
    /// same as none, and an erasure deletes it.
    pub fn is_spent(&self, now: Secs) -> bool {
        self.holds_only_counts() && self.counts_matter_until() <= now
    }

    /// Whether the record says nothing but what [`ContactRecord::keep_only_counts`] keeps.
    pub fn holds_only_counts(&self) -> bool {
        let mut counts = *self;
        counts.keep_only_counts();
        counts == *self
    }

    /// Whether marketing is withdrawn, by the business's own opt-out or by Meta's stop.
    #[inline]
    pub fn marketing_withdrawn(&self) -> bool {
        self.flags & (flags::MARKETING_OPTED_OUT | flags::META_MARKETING_STOPPED) != 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_is_36_bytes() {
        // 32, and 4 for the free entry point window.
        assert_eq!(std::mem::size_of::<super::ContactRecord>(), 36);
    }

    #[test]
    fn an_erased_record_keeps_only_counts_and_only_while_they_matter() {
        use super::{flags, ContactRecord};
        let mut record = ContactRecord {
            window_until: 500,
            last_business_initiated: 100,
            consent_at: 90,
            flags: flags::OPTED_IN | flags::SHARED_COUNT | flags::FEP_PENDING,
            consent_source: 6,
            ..ContactRecord::default()
        };
        assert!(!record.holds_only_counts());
        record.keep_only_counts();
        assert!(record.holds_only_counts());
        assert_eq!(
            (record.window_until, record.consent_at, record.flags),
            (0, 0, flags::SHARED_COUNT)
        );
        assert_eq!(record.counts_matter_until(), 100 + 86_400);
        assert!(!record.is_spent(100 + 86_399), "the slot still counts");
        assert!(record.is_spent(100 + 86_400));
        assert!(ContactRecord::default().is_spent(0));
    }
}
