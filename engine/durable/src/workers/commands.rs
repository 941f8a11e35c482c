//! What a shard runs for one person, each command with the answer its own type: the durable
//! engine asks a shard to take an inbound message and gets an [`InboundEffect`], never a reply
//! it must pick apart. [`Command`] is the one kind that mixes the others in one batch, applied in
//! its order (the decision benchmark's traffic, the workers' tests); its answer is [`Reply`].
//! A durable send ([`Submit`]) is the durable engine's alone: it needs an id the engine gives.

use crate::outcome::{record_outcome, Followup};
use crate::submission::Prepared;
use wagate_rules::clock::Timestamp;
use wagate_rules::contact_events::{
    ConsentChange, ContactView, FailedSend, FailureEffect, FailureReversal, InboundEffect,
    InboundMessage,
};
use wagate_rules::decision::{Decision, DeferReason, Refusal, SendRequest};
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId};
use wagate_rules::shard::Shard;
use wagate_rules::state::contact::ConsentSource;

use super::Writes;

/// A command a shard runs for one person, answered with its own type.
pub trait ShardCommand: Send + 'static {
    type Answer: Send + 'static;

    /// The person whose shard runs it (every command for a person runs on one thread, in
    /// order).
    fn person(&self) -> Msisdn;

    /// Runs it on the person's shard at `now`; with persistence, what must be written before
    /// it is answered goes into `writes`.
    fn run(self, shard: &mut Shard, now: Timestamp, writes: Option<&mut Writes>) -> Self::Answer;
}

/// Decides a send and writes nothing (the inline engine's question, on the pool).
#[derive(Debug, Clone)]
pub struct Decide(pub SendRequest);

impl ShardCommand for Decide {
    type Answer = Decision;

    fn person(&self) -> Msisdn {
        self.0.to
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Decision {
        shard.decide(&self.0, now)
    }
}

/// How long a queued send whose template is paused waits before it is decided again.
pub(crate) const PAUSED_RECHECK_SECS: u32 = 3_600;

/// A durable send: decided, and if accepted or queued written with its message before the
/// answer (the durable engine's own: it gives the send its id first).
#[derive(Debug, Clone)]
pub(crate) struct Submit(pub(crate) Box<Prepared>);

/// What a [`Submit`] answers: the decision and the message id it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submitted {
    pub(crate) decision: Decision,
    pub(crate) message_id: u64,
}

impl ShardCommand for Submit {
    type Answer = Submitted;

    fn person(&self) -> Msisdn {
        self.0.submission.request.to
    }

    fn run(self, shard: &mut Shard, now: Timestamp, writes: Option<&mut Writes>) -> Submitted {
        let mut prepared = self.0;
        if let Some(pool) = prepared.submission.request.options.pool {
            // The pool stays with the send: if it is queued, its release picks again.
            let request = &mut prepared.submission.request;
            let picked = if prepared.released_from.is_some() {
                shard.keep_or_pick(pool, request.number, request.to, now)
            } else {
                shard.pick_from_pool(pool, request.to, now)
            };
            if let Some(number) = picked {
                request.number = number;
            }
        }
        let mut decision = shard.decide(&prepared.submission.request, now);
        if let Decision::Deferred { until, reason } = decision {
            if reason == DeferReason::Scheduled {
                // Scheduled for later: always kept, whatever the sender chose for limits.
                prepared.submission.queue_when_deferred = true;
            }
            let request = &prepared.submission.request;
            if prepared.submission.queue_when_deferred
                && request.options.expire_at.is_none()
                && prepared.released_from.is_none()
            {
                // A queued template lives no longer than Meta would keep it (its TTL), from the
                // moment it may go: past it, it is dropped rather than sent late.
                if let Some(ttl) = shard.template_ttl_secs(request) {
                    let from = if reason == DeferReason::Scheduled {
                        until
                    } else {
                        now
                    };
                    prepared.submission.request.options.expire_at =
                        Some(Timestamp(from.0 + u64::from(ttl) * 1_000_000));
                }
            }
        }
        if let Decision::Deferred {
            until,
            reason: DeferReason::Throughput,
        } = &mut decision
        {
            if prepared.submission.queue_when_deferred {
                let number = prepared.submission.request.number;
                *until = shard.queue_turn(number, now).unwrap_or(*until);
            }
        }
        let held = prepared.released_from.is_some() && prepared.submission.queue_when_deferred;
        if held && decision == Decision::Refused(Refusal::TemplatePaused) {
            // A queued send whose template Meta paused is held, not refused: a pause ends.
            decision = Decision::Deferred {
                until: Timestamp::from_secs(now.secs().saturating_add(PAUSED_RECHECK_SECS)),
                reason: DeferReason::TemplatePaused,
            };
        }
        let message_id = prepared.message_id;
        if let Some(writes) = writes {
            match record_outcome(
                *prepared,
                &decision,
                now,
                &mut writes.batch,
                &mut writes.ledger,
                &mut writes.fates,
            ) {
                Some(Followup::Dispatch(due)) => writes.accepted.push(due),
                Some(Followup::Release(due)) => writes.queued.push(due),
                None => {}
            }
        }
        Submitted {
            decision,
            message_id,
        }
    }
}

/// An inbound message (Meta's `messages` webhook): opens the window, may change consent.
#[derive(Debug, Clone)]
pub struct Inbound(pub InboundMessage);

impl ShardCommand for Inbound {
    type Answer = Result<InboundEffect, Refusal>;

    fn person(&self) -> Msisdn {
        self.0.from
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.inbound(&self.0, now)
    }
}

/// Meta's status of a message to a person: the status automations it sets going, on the
/// person's shard.
#[derive(Debug, Clone)]
pub struct FollowStatus {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    /// `delivered`, `read` or `failed`.
    pub status: &'static str,
    pub template: Option<String>,
}

impl ShardCommand for FollowStatus {
    type Answer = wagate_rules::contact_events::Automated;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.follow_status(
            self.number,
            self.person,
            self.status,
            self.template.as_deref(),
            now,
        )
    }
}

/// A consent change for a person, through one of the business's numbers.
#[derive(Debug, Clone)]
pub struct Consent {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub change: ConsentChange,
    pub source: ConsentSource,
    /// What the caller supplied as proof (JSON, capped), kept in the history with the event.
    pub evidence: Option<std::sync::Arc<str>>,
    /// The caller says this opt-in was given after the person was erased (with evidence):
    /// the only opt-in that takes an erased person back.
    pub after_erasure: bool,
}

impl From<(PhoneNumberId, Msisdn, ConsentChange, ConsentSource)> for Consent {
    /// A change with no proof beyond its source.
    fn from(
        (number, person, change, source): (PhoneNumberId, Msisdn, ConsentChange, ConsentSource),
    ) -> Consent {
        Consent {
            number,
            person,
            change,
            source,
            evidence: None,
            after_erasure: false,
        }
    }
}

impl ShardCommand for Consent {
    type Answer = Result<(), Refusal>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.consent_with_evidence(
            self.number,
            self.person,
            self.change,
            self.source,
            self.evidence,
            now,
        )
    }
}

/// A delivery failure Meta reported for a message to a person (its error code).
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFailed {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub code: u32,
}

impl ShardCommand for DeliveryFailed {
    type Answer = Result<FailureEffect, Refusal>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.delivery_failed(self.number, self.person, self.code, now)
    }
}

/// Meta says messages to a person are free until a time (a free entry point window).
#[derive(Debug, Clone, Copy)]
pub struct FreeEntryUntil {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub until: Timestamp,
}

impl ShardCommand for FreeEntryUntil {
    type Answer = Result<(), Refusal>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, _: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.free_entry_until(self.number, self.person, self.until)
    }
}

/// The business blocked or unblocked a person on a number (Meta's block list).
#[derive(Debug, Clone, Copy)]
pub struct BusinessBlock {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub blocked: bool,
}

impl ShardCommand for BusinessBlock {
    type Answer = Result<(), Refusal>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, _: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.business_block(self.number, self.person, self.blocked)
    }
}

/// A send that failed for good: its price and its recipient's slot given back.
#[derive(Debug, Clone)]
pub struct SendFailed(pub FailedSend);

impl ShardCommand for SendFailed {
    type Answer = Option<FailureReversal>;

    fn person(&self) -> Msisdn {
        self.0.to
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.send_failed(&self.0, now)
    }
}

/// Erases a person from a business's numbers (`forget_spent`: finishes an erasure whose
/// counts were kept, see `Shard::forget_spent`). Answers until when counts stay kept.
#[derive(Debug, Clone, Copy)]
pub struct Erase {
    pub account: AccountId,
    pub person: Msisdn,
    pub forget_spent: bool,
}

impl ShardCommand for Erase {
    type Answer = Option<Timestamp>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        if self.forget_spent {
            shard.forget_spent(self.account, self.person, now)
        } else {
            shard.erase(self.account, self.person, now)
        }
    }
}

/// Reads a person's record for a number (consent, window); changes nothing.
#[derive(Debug, Clone, Copy)]
pub struct ContactRead {
    pub number: PhoneNumberId,
    pub person: Msisdn,
}

impl ShardCommand for ContactRead {
    type Answer = Option<ContactView>;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.contact(self.number, self.person, now)
    }
}

/// Screens one person of a campaign's audience (consent, block, reach, price); changes nothing.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub category: wagate_rules::Category,
    pub topics: wagate_rules::topics::TopicSet,
}

impl ShardCommand for Screen {
    type Answer = wagate_rules::shard::Screened;

    fn person(&self) -> Msisdn {
        self.person
    }

    fn run(self, shard: &mut Shard, now: Timestamp, _: Option<&mut Writes>) -> Self::Answer {
        shard.screen(self.number, self.person, self.category, self.topics, now)
    }
}

/// Any of the commands, so that one batch can mix them and have them applied in its order.
#[derive(Debug, Clone)]
pub enum Command {
    Decide(SendRequest),
    Inbound(InboundMessage),
    Consent {
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
    },
    DeliveryFailed {
        number: PhoneNumberId,
        person: Msisdn,
        code: u32,
    },
    /// A send that failed for good: its price and its recipient's slot given back.
    SendFailed(FailedSend),
    /// Reads a person's record for a number (consent, window); changes nothing.
    Contact {
        number: PhoneNumberId,
        person: Msisdn,
    },
}

/// What a [`Command`] answers: the answer of the command it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Decision(Decision),
    Inbound(Result<InboundEffect, Refusal>),
    Consent(Result<(), Refusal>),
    DeliveryFailed(Result<FailureEffect, Refusal>),
    SendFailed(Option<FailureReversal>),
    Contact(Option<ContactView>),
}

impl ShardCommand for Command {
    type Answer = Reply;

    fn person(&self) -> Msisdn {
        match self {
            Command::Decide(request) => request.to,
            Command::Inbound(message) => message.from,
            Command::SendFailed(failed) => failed.to,
            Command::Consent { person, .. }
            | Command::DeliveryFailed { person, .. }
            | Command::Contact { person, .. } => *person,
        }
    }

    fn run(self, shard: &mut Shard, now: Timestamp, writes: Option<&mut Writes>) -> Reply {
        match self {
            Command::Decide(request) => Reply::Decision(Decide(request).run(shard, now, writes)),
            Command::Inbound(message) => Reply::Inbound(Inbound(message).run(shard, now, writes)),
            Command::Consent {
                number,
                person,
                change,
                source,
            } => Reply::Consent(
                Consent::from((number, person, change, source)).run(shard, now, writes),
            ),
            Command::DeliveryFailed {
                number,
                person,
                code,
            } => Reply::DeliveryFailed(
                DeliveryFailed {
                    number,
                    person,
                    code,
                }
                .run(shard, now, writes),
            ),
            Command::SendFailed(failed) => {
                Reply::SendFailed(SendFailed(failed).run(shard, now, writes))
            }
            Command::Contact { number, person } => {
                Reply::Contact(ContactRead { number, person }.run(shard, now, writes))
            }
        }
    }
}
