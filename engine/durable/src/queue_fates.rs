//! What becomes of a queued send, for its tenant: queued, released (accepted when its turn
//! came) or dropped (refused then). The shard worker that decides a send collects its fate, and
//! the [`FateWriter`] the server sets puts what the tenant hears into the same write as the
//! decision itself: a crash keeps both or neither. Each is written once by construction: a
//! send is queued once, and leaves the queue once (a release that queues it again says
//! nothing).

use std::sync::{Arc, OnceLock};

use wagate_rules::clock::Timestamp;
use wagate_rules::decision::DeferReason;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::Refusal;
use wagate_store::Batch;

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

/// Writes what tenants hear of queued sends into the decision's own batch.
pub trait FateWriter: Send + Sync {
    /// Puts what `fate`'s tenant hears into `batch` (nothing if it hears nothing); how many
    /// records it put.
    fn write(&self, fate: &QueuedSendFate, batch: &mut Batch) -> usize;
    /// `count` records put by [`FateWriter::write`] are durable now.
    fn committed(&self, count: usize);
}

/// The writer, once the server sets it (none: nobody hears).
pub type FateWriters = Arc<OnceLock<Box<dyn FateWriter>>>;
