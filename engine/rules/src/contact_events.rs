//! Events about people that change their state: inbound messages, consent changes and
//! delivery failures reported by Meta.

use crate::clock::Timestamp;
use crate::decision::Accepted;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::state::contact::ConsentSource;
use crate::topics::TopicSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundContent {
    Text(String),
    /// A template quick-reply tap: `button.payload`.
    Button {
        payload: String,
    },
    /// An interactive reply (`button_reply` or `list_reply`) id.
    InteractiveReply {
        id: String,
    },
    /// Media, location, reactions...: they open the window and say nothing about consent.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub number: PhoneNumberId,
    pub from: Msisdn,
    pub content: InboundContent,
    /// The person came from an ad or a page's call-to-action (Meta's `referral`): the
    /// business's reply within 24 h opens a free entry point window.
    pub referral: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentChange {
    /// Opted in to business-initiated messages (clears any opt-out).
    OptIn,
    /// Opted out of every business-initiated message.
    OptOut,
    /// Stopped marketing messages only.
    MarketingOptOut,
    /// Resumed marketing messages.
    MarketingOptIn,
    /// Withdrew these topics only.
    TopicsOptOut(TopicSet),
    /// Opted in to these topics: after a global opt-out, to these alone (the others stay
    /// withdrawn); otherwise these are resumed.
    TopicsOptIn(TopicSet),
}

impl ConsentChange {
    /// Whether it gives consent (to everything, marketing, or some topics).
    pub fn is_opt_in(self) -> bool {
        matches!(
            self,
            ConsentChange::OptIn | ConsentChange::MarketingOptIn | ConsentChange::TopicsOptIn(_)
        )
    }
}

/// A consent change as applied, for the history (the shard notes it; the durable engine
/// writes it with the change itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub at: Timestamp,
    pub change: ConsentChange,
    pub source: ConsentSource,
    /// The caller's proof (JSON), for a change through the API.
    pub evidence: Option<std::sync::Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEffect {
    /// The customer-service window is now open until this moment.
    pub window_until: Timestamp,
    pub consent: Option<ConsentChange>,
    /// The keyword automations the message set going (their indices in the tenant's list),
    /// within the loop bound, and how many the bound held.
    pub automations: Automated,
}

/// Automations a message or a status set going, on the person's shard: those within the loop
/// bound, and how many it held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Automated {
    pub fired: Vec<usize>,
    pub held: u32,
}

/// What a delivery failure code from Meta did to the person's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureEffect {
    /// 131050: marketing stopped.
    MarketingOptedOut,
    /// 131049: no marketing to this person for 24 h.
    MarketingCooldown { until: Timestamp },
    /// 131026: not reachable until they write to us.
    Unreachable,
    /// 130403: the business blocked them on this number.
    Blocked,
    /// The code carries no rule about the person.
    None,
}

/// An accepted send that failed for good: Meta refused it (132015, 131050, any permanent
/// error) or its delivery failed. Meta charges nothing for it and counts no recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedSend {
    pub number: PhoneNumberId,
    pub to: Msisdn,
    /// When it was accepted: the second its recipient was counted at, the day it was priced on.
    pub accepted_at: Timestamp,
    pub accepted: Accepted,
}

/// What taking back a failed send's effects came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureReversal {
    /// Its recipient no longer counts in the rolling 24 h (it took the slot, and no later
    /// counted send to them shares it).
    pub slot_released: bool,
}

/// A person's state as seen from outside the core (the default: never seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContactView {
    pub window_open_until: Option<Timestamp>,
    pub opted_in: bool,
    pub opted_out: bool,
    /// The business's own marketing opt-out (its button or API).
    pub marketing_opted_out: bool,
    /// Meta's marketing stop (`user_preferences`, or a 131050 refusal), until Meta's resume.
    pub meta_marketing_stopped: bool,
    pub consent_source: ConsentSource,
    pub consent_changed_at: Option<Timestamp>,
    pub last_business_initiated: Option<Timestamp>,
    pub unreachable: bool,
    /// The business blocked them on this number.
    pub blocked: bool,
    /// Every topic withdrawn (marketing included, by whoever withdrew it).
    pub withdrawn_topics: TopicSet,
}
