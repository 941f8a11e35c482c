//! What tenants hear of wagate's own doings, written into the very write that records them, by
//! the [`NewsWriter`] the server sets: a crash keeps both or neither. A queued send's fate
//! (queued, released when its turn came, dropped when refused then: collected by the shard
//! worker that decides it; each once by construction, as a send is queued once and leaves the
//! queue once, and a release that queues it again says nothing), a send that failed for good
//! at dispatch (with its settlement), a campaign paused, resumed or done (with its record).

use std::sync::{Arc, OnceLock};

use wagate_rules::clock::Timestamp;
use wagate_rules::decision::DeferReason;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::Refusal;
use wagate_store::Batch;

use crate::campaigns::CampaignEvent;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueFate {
    /// Queued until `until`, for `reason`.
    Queued {
        until: Timestamp,
        reason: DeferReason,
    },
    /// Accepted when its turn came: on its way to the upstream.
    Released,
    /// Refused when its turn came: never sent.
    Dropped(Refusal),
}

/// One queued send's fate, decided at `at`, from `number` (the one it goes from, a pool's pick
/// included) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSendFate {
    pub message_id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub at: Timestamp,
    pub fate: QueueFate,
}

/// A send the upstream refused for good (or whose validity ended before its turn), as its
/// tenant is told: the message, and Meta's code and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    pub message_id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub code: Option<u32>,
    pub reason: String,
}

/// What a tenant hears of, at the moment it is written down.
#[derive(Debug, Clone, Copy)]
pub enum News<'a> {
    QueuedSend(&'a QueuedSendFate),
    /// A campaign paused, resumed or done, at `at`.
    Campaign(&'a CampaignEvent, Timestamp),
    /// A send that failed for good at dispatch, at `at`.
    DispatchFailed(&'a DispatchFailure, Timestamp),
}

/// Writes what tenants hear into the very write that records it.
pub trait NewsWriter: Send + Sync {
    /// Puts what `news`'s tenant hears into `batch` (nothing if it hears nothing); how many
    /// records it put.
    fn write(&self, news: News<'_>, batch: &mut Batch) -> usize;
    /// `count` records put by [`NewsWriter::write`] are durable now.
    fn committed(&self, count: usize);
    /// The number and person a record this writer put is about, when it keeps news in a form
    /// of its own (not Meta's JSON), so that erasing the person finds it too.
    fn about(&self, _record: &[u8]) -> Option<(PhoneNumberId, Msisdn)> {
        None
    }
}

/// The writer, once the server sets it (none: nobody hears).
pub type NewsWriters = Arc<OnceLock<Box<dyn NewsWriter>>>;
