//! A send request as the core sees it, and the typed outcome of deciding it.

use crate::clock::{Secs, Timestamp};
use crate::groups::GroupRefusal;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::template::model::{Category, MediaKind, TemplateSend};
use crate::template::status::TemplateStatus;
use crate::topics::TopicSet;
use crate::volume::MarketId;

/// What is being sent. The core needs only what the rules look at; the full payload travels
/// beside it to the upstream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    Text {
        body: String,
    },
    Media {
        kind: MediaKind,
        caption: Option<String>,
    },
    /// Reply buttons, lists, CTA URLs: free-form, window only.
    Interactive,
    /// Audio, stickers, locations, contacts, reactions: free-form, window only.
    Other,
    Template(TemplateSend),
}

impl Message {
    pub fn text(body: &str) -> Message {
        Message::Text {
            body: body.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendRequest {
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub message: Message,
    /// What the sender asked of this send beyond Meta's body. Kept outside the serialised
    /// form (which records of queued sends hold), beside it.
    #[serde(skip)]
    pub options: SendOptions,
}

/// A send's own options: its consent topic and when it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendOptions {
    /// A consent topic the sender names (beside its template's own): a person who withdrew it
    /// gets none of it.
    pub topic: TopicSet,
    /// Not decided before this instant (a scheduled send, a reminder): deferred until then.
    pub send_at: Option<Timestamp>,
    /// Never sent from this instant on (a validity period): refused as expired, never late.
    pub expire_at: Option<Timestamp>,
    /// The person's own UTC offset in minutes, when the sender knows it (otherwise their
    /// calling code's zone), for rules in local time.
    pub utc_offset_minutes: Option<i16>,
    /// The sender pool (its index in the registry) the send names instead of a number: the
    /// number is picked on the person's shard before the decision, then this is cleared.
    pub pool: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub category: Category,
    /// Outside the customer-service window: counted against the messaging limit.
    pub business_initiated: bool,
    /// The recipient was not yet among this scope's unique recipients of the last 24 h.
    pub new_unique_recipient: bool,
    pub price_micros: u64,
    /// The recipient's market on the card that priced it (the ledger row it is counted in).
    /// Not kept with a stored message: there it is the card's market of its recipient
    /// ([`crate::rate_cards::RateCards::market_at`]).
    pub market: MarketId,
    /// The slot the number's throughput scheduler gave the message.
    pub send_at: Timestamp,
    /// When the person's consent the decision read last changed (0: never): the history's
    /// events up to then are the consent the message relied on.
    pub consent_at: Secs,
}

/// Why a message must wait. The state is unchanged; ask again at `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    /// The scope's unique-recipient limit is reached; capacity frees as sends age past 24 h.
    TierLimit,
    /// One message per pair interval to the same person (Meta 131056 if ignored).
    PairRate,
    /// The number's throughput slots are taken further ahead than the scheduling horizon.
    Throughput,
    /// The per-person marketing cap for a rolling 24 h is reached.
    MarketingCap,
    /// WhatsApp's per-user marketing limit hit this person recently (131049).
    MarketingCooldown,
    /// The number is restricted from business-initiated messages.
    Restricted,
    /// A queued send's template is paused (Meta's 132015): held, decided again later, not
    /// refused, since a pause ends.
    TemplatePaused,
    /// The sender scheduled it for later (`send_at`): not decided before its time.
    Scheduled,
    /// Outside the person's allowed local hours for its category (the tenant's quiet hours).
    QuietHours,
}

impl DeferReason {
    /// Meta's code for the same condition when it would have been sent anyway.
    pub fn meta_code(self) -> Option<u32> {
        match self {
            DeferReason::PairRate => Some(131_056),
            DeferReason::Throughput => Some(130_429),
            DeferReason::MarketingCooldown => Some(131_049),
            DeferReason::Restricted => Some(368),
            DeferReason::TemplatePaused => Some(132_015),
            DeferReason::TierLimit
            | DeferReason::MarketingCap
            | DeferReason::Scheduled
            | DeferReason::QuietHours => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DeferReason::TierLimit => "tier_limit",
            DeferReason::PairRate => "pair_rate",
            DeferReason::Throughput => "throughput",
            DeferReason::MarketingCap => "marketing_cap",
            DeferReason::MarketingCooldown => "marketing_cooldown",
            DeferReason::Restricted => "restricted",
            DeferReason::TemplatePaused => "template_paused",
            DeferReason::Scheduled => "scheduled",
            DeferReason::QuietHours => "quiet_hours",
        }
    }
}

/// Why a message can never go as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("phone number id {0:?} is not registered with wagate")]
    UnknownNumber(PhoneNumberId),
    #[error("more than 24 hours since the person last wrote: only a template may be sent")]
    OutsideServiceWindow,
    #[error("no recorded opt-in for business-initiated messages")]
    NoOptIn,
    #[error("the person opted out of all business-initiated messages")]
    OptedOut,
    #[error("the person stopped marketing messages from this business")]
    MarketingOptedOut,
    #[error("the person withdrew consent for this template's topic")]
    TopicOptedOut,
    #[error("the number cannot receive WhatsApp messages (last delivery failed with 131026)")]
    Unreachable,
    #[error("the business blocked this person on this number (unblock them to message them)")]
    BlockedByBusiness,
    #[error("template '{name}' does not exist in language '{language}'")]
    TemplateNotFound { name: String, language: String },
    #[error("template is {} and cannot be sent", .0.name())]
    TemplateNotApproved(TemplateStatus),
    #[error("template is paused for low quality")]
    TemplatePaused,
    #[error("template is disabled")]
    TemplateDisabled,
    #[error("{part} has {got} parameters; the template has {expected}")]
    ParameterCount {
        part: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("parameter format does not match the template: {0}")]
    ParameterFormat(String),
    #[error("media does not match the template: {0}")]
    MediaType(String),
    #[error("button parameter is invalid: {0}")]
    ButtonParameter(String),
    #[error("text has {got} characters; at most {limit}")]
    TextTooLong { limit: u32, got: usize },
    #[error(
        "the person was erased from this business: a re-import cannot opt them back in; a \
         fresh opt-in says after_erasure and carries its evidence"
    )]
    Erased,
    #[error("the send's validity ended before it could go (expire_at): it is never sent late")]
    Expired,
    /// A group's rule (the profile's `[groups]`).
    #[error(transparent)]
    Group(GroupRefusal),
}

impl Refusal {
    /// Meta's error code for the same refusal; `None` for rules Meta has no code for.
    pub fn meta_code(&self) -> Option<u32> {
        match self {
            Refusal::UnknownNumber(_) => Some(100),
            Refusal::OutsideServiceWindow => Some(131_047),
            Refusal::NoOptIn
            | Refusal::OptedOut
            | Refusal::TopicOptedOut
            | Refusal::Erased
            | Refusal::Expired => None,
            Refusal::MarketingOptedOut => Some(131_050),
            Refusal::Unreachable => Some(131_026),
            Refusal::BlockedByBusiness => Some(130_403),
            Refusal::TemplateNotFound { .. } | Refusal::TemplateNotApproved(_) => Some(132_001),
            Refusal::TemplatePaused => Some(132_015),
            Refusal::TemplateDisabled => Some(132_016),
            Refusal::ParameterCount { .. } => Some(132_000),
            Refusal::ParameterFormat(_) => Some(132_012),
            Refusal::MediaType(_) => Some(131_053),
            Refusal::ButtonParameter(_) => Some(131_009),
            Refusal::TextTooLong { .. } => Some(100),
            Refusal::Group(refusal) => Some(refusal.meta_code()),
        }
    }

    /// A stable machine-readable name for wagate's own reason field.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::UnknownNumber(_) => "unknown_number",
            Refusal::OutsideServiceWindow => "outside_service_window",
            Refusal::NoOptIn => "no_opt_in",
            Refusal::OptedOut => "opted_out",
            Refusal::MarketingOptedOut => "marketing_opted_out",
            Refusal::TopicOptedOut => "topic_opted_out",
            Refusal::Unreachable => "unreachable",
            Refusal::BlockedByBusiness => "blocked_by_business",
            Refusal::TemplateNotFound { .. } => "template_not_found",
            Refusal::TemplateNotApproved(_) => "template_not_approved",
            Refusal::TemplatePaused => "template_paused",
            Refusal::TemplateDisabled => "template_disabled",
            Refusal::ParameterCount { .. } => "parameter_count",
            Refusal::ParameterFormat(_) => "parameter_format",
            Refusal::MediaType(_) => "media_type",
            Refusal::ButtonParameter(_) => "button_parameter",
            Refusal::TextTooLong { .. } => "text_too_long",
            Refusal::Erased => "erased",
            Refusal::Expired => "expired",
            Refusal::Group(refusal) => refusal.name(),
        }
    }
}

/// The outcome of a send decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted(Accepted),
    Deferred {
        until: Timestamp,
        reason: DeferReason,
    },
    Refused(Refusal),
}

impl Decision {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Decision::Accepted(_))
    }

    pub fn accepted(&self) -> Option<&Accepted> {
        match self {
            Decision::Accepted(accepted) => Some(accepted),
            _ => None,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Decision::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    pub fn deferral(&self) -> Option<(Timestamp, DeferReason)> {
        match self {
            Decision::Deferred { until, reason } => Some((*until, *reason)),
            _ => None,
        }
    }
}
