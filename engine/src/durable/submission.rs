//! A send as the durable engine takes it: the decision request, the payload for the upstream,
//! and an optional idempotency key; and the writes an accepted or refused one turns into.

use crate::clock::Timestamp;
use crate::decision::{Decision, SendRequest};
use crate::durable::idempotency::{IdempotencyRecord, StoredOutcome};
use crate::durable::message::{Delivery, DispatchStatus, DueMessage, StoredMessage};
use crate::price::unix_day;
use crate::store::keys::{idempotency_key, ledger_key, message_key};
use crate::store::{Batch, Family};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub request: SendRequest,
    /// The message exactly as it goes upstream (for the Cloud API, its JSON body).
    pub payload: Vec<u8>,
    pub idempotency_key: Option<String>,
}

/// A submission after the engine gave it an id and, if keyed, a body hash and expiry.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub submission: Submission,
    pub message_id: u64,
    pub body_hash: u64,
    /// Unix seconds at which the idempotency record lapses.
    pub expires_at: u64,
}

/// Ledger counts of one worker batch, summed per (number, day, category) so that a batch
/// writes one counter update per row rather than one per message.
#[derive(Default)]
pub struct LedgerDeltas {
    rows: crate::hash::MixHashMap<(u64, u32, u8), (u64, u64)>,
}

impl LedgerDeltas {
    fn add(&mut self, number: u64, day: u32, category: u8, micros: u64) {
        let row = self.rows.entry((number, day, category)).or_default();
        row.0 += 1;
        row.1 += micros;
    }

    /// Moves the sums into `batch`.
    pub fn write(&mut self, batch: &mut Batch) {
        for ((number, day, category), (messages, micros)) in self.rows.drain() {
            batch.add(
                Family::Ledger,
                ledger_key(number, day, category),
                messages,
                micros,
            );
        }
    }
}

/// Adds the writes of a decided submission to `batch` (its ledger count to `ledger`); returns
/// the message to dispatch if it was accepted. Deferred submissions write nothing: nothing
/// happened.
pub fn record_outcome(
    prepared: Prepared,
    decision: &Decision,
    now: Timestamp,
    batch: &mut Batch,
    ledger: &mut LedgerDeltas,
) -> Option<DueMessage> {
    let request = &prepared.submission.request;
    let key = prepared.submission.idempotency_key.clone();
    let outcome = match decision {
        Decision::Accepted(accepted) => StoredOutcome::Accepted {
            message_id: prepared.message_id,
            accepted: *accepted,
        },
        Decision::Refused(refusal) => StoredOutcome::Refused {
            code: refusal.meta_code(),
            name: refusal.name().to_string(),
            reason: refusal.to_string(),
        },
        Decision::Deferred { .. } => return None,
    };
    if let Some(key) = &key {
        let record = IdempotencyRecord {
            expires_at: prepared.expires_at,
            body_hash: prepared.body_hash,
            outcome,
        };
        batch.put(
            Family::Idempotency,
            idempotency_key(request.number.0, key),
            record.encode(),
        );
    }
    let Decision::Accepted(accepted) = decision else {
        return None;
    };
    let message = StoredMessage {
        id: prepared.message_id,
        number: request.number,
        to: request.to,
        accepted_at: now,
        decision: *accepted,
        status: DispatchStatus::Pending,
        attempts: 0,
        upstream: String::new(),
        idempotency_key: key.unwrap_or_default(),
        payload: prepared.submission.payload,
        delivery: Delivery::None,
        delivery_error: 0,
    };
    batch.put_encoded(Family::Outbox, &message_key(message.id), |out| {
        message.encode_into(out)
    });
    let due = message.due();
    ledger.add(
        request.number.0,
        unix_day(now.secs()),
        accepted.category as u8,
        accepted.price_micros,
    );
    Some(due)
}
