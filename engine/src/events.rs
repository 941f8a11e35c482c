//! Events about people that change their state: inbound messages, consent changes and
//! delivery failures reported by Meta.

use crate::clock::Timestamp;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::state::contact::ConsentSource;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundEffect {
    /// The customer-service window is now open until this moment.
    pub window_until: Timestamp,
    pub consent: Option<ConsentChange>,
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
    /// The code carries no rule about the person.
    None,
}

/// A person's state as seen from outside the core (the default: never seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContactView {
    pub window_open_until: Option<Timestamp>,
    pub opted_in: bool,
    pub opted_out: bool,
    pub marketing_opted_out: bool,
    pub consent_source: ConsentSource,
    pub consent_changed_at: Option<Timestamp>,
    pub last_business_initiated: Option<Timestamp>,
    pub unreachable: bool,
}
