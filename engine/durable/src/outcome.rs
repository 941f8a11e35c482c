//! The writes a decided submission turns into: the message (accepted), the queue record
//! (queued), the idempotency record with the answer, the ledger counts; and what must follow
//! once they are durable (dispatch or release).

use crate::deferred::DeferredRecord;
use crate::idempotency::{IdempotencyRecord, StoredOutcome};
use crate::message::{Delivery, DispatchStatus, DueMessage, StoredMessage};
use crate::submission::Prepared;
use crate::tenant_news::{QueueFate, QueuedSendFate};
use wagate_rules::clock::Timestamp;
use wagate_rules::decision::Decision;
use wagate_rules::price::unix_day;
use wagate_rules::rate_cards::RateCards;
use wagate_rules::volume::MarketId;
use wagate_store::keys::{
    deferred_key, idempotency_key, ledger_key, message_key, LedgerRowKey, LedgerSide,
};
use wagate_store::{Batch, Family};

/// Ledger counts of one worker batch, summed per (number, day, category, market) so that a
/// batch writes one counter update per row rather than one per message.
#[derive(Default)]
pub(crate) struct LedgerDeltas {
    rows: wagate_rules::hash::MixHashMap<(u64, u32, u8, MarketId), (u64, u64)>,
}

impl LedgerDeltas {
    fn add(&mut self, number: u64, day: u32, category: u8, market: MarketId, micros: u64) {
        let row = self
            .rows
            .entry((number, day, category, market))
            .or_default();
        row.0 += 1;
        row.1 += micros;
    }

    /// Moves the sums into `batch`, each market by its name on `cards`.
    pub(crate) fn write(&mut self, batch: &mut Batch, cards: &RateCards) {
        for ((number, day, category, market), (messages, micros)) in self.rows.drain() {
            let row = LedgerRowKey {
                number,
                day,
                category,
                side: LedgerSide::Estimate,
                market: cards.market_name(market),
            };
            batch.add(Family::Ledger, ledger_key(&row), messages, micros);
        }
    }
}

fn refused_release(
    prepared: &Prepared,
    refusal: &wagate_rules::decision::Refusal,
    now: Timestamp,
) -> StoredMessage {
    never_sent(
        prepared.message_id,
        &prepared.submission,
        now,
        DispatchStatus::Refused,
        format!("{}: {refusal}", refusal.name()),
        refusal.meta_code().unwrap_or(0),
    )
}

/// The record of a queued send that ends without being sent (refused at its turn, cancelled):
/// what a status read finds, with why.
pub(crate) fn never_sent(
    id: u64,
    submission: &crate::submission::Submission,
    now: Timestamp,
    status: DispatchStatus,
    why: String,
    code: u32,
) -> StoredMessage {
    let request = &submission.request;
    StoredMessage {
        id,
        number: request.number,
        to: request.to,
        accepted_at: now,
        decision: wagate_rules::decision::Accepted {
            category: wagate_rules::template::model::Category::Service,
            business_initiated: false,
            new_unique_recipient: false,
            price_micros: 0,
            market: wagate_rules::volume::MarketId::NONE,
            send_at: now,
            consent_at: 0,
        },
        status,
        attempts: 0,
        upstream: why,
        idempotency_key: submission.idempotency_key.clone().unwrap_or_default(),
        payload: Vec::new(),
        delivery: Delivery::None,
        delivery_error: code,
        expire_at: None,
    }
}

/// What follows a recorded outcome once its commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Followup {
    /// Accepted: the dispatcher sends it at its slot.
    Dispatch(DueMessage),
    /// Queued: the releaser decides it again when due.
    Release(DueMessage),
}

/// Adds the writes of a decided submission to `batch` (its ledger count to `ledger`); returns
/// what must happen next, if anything. Deferred submissions the caller did not want queued
/// write nothing: nothing happened.
pub(crate) fn record_outcome(
    prepared: Prepared,
    decision: &Decision,
    now: Timestamp,
    batch: &mut Batch,
    ledger: &mut LedgerDeltas,
    fates: &mut Vec<QueuedSendFate>,
) -> Option<Followup> {
    let request = &prepared.submission.request;
    let key = prepared.submission.idempotency_key.clone();
    if let Some(queued) = prepared.released_from {
        batch.delete(Family::Deferred, queued);
    }
    let fate = |fate| QueuedSendFate {
        message_id: prepared.message_id,
        number: request.number,
        to: request.to,
        at: now,
        fate,
    };
    match (decision, prepared.released_from) {
        (Decision::Deferred { until, reason }, None) if prepared.submission.queue_when_deferred => {
            fates.push(fate(QueueFate::Queued {
                until: *until,
                reason: *reason,
            }));
        }
        (Decision::Accepted(_), Some(_)) => fates.push(fate(QueueFate::Released)),
        (Decision::Refused(refusal), Some(_)) => {
            fates.push(fate(QueueFate::Dropped(refusal.clone())))
        }
        _ => {}
    }
    let mut queued = None;
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
        Decision::Deferred { until, reason } if prepared.submission.queue_when_deferred => {
            let record_key = deferred_key(until.0, prepared.message_id);
            batch.put_encoded(Family::Deferred, &record_key, |out| {
                DeferredRecord::encode_into(*reason, &prepared.submission, out)
            });
            queued = Some(Followup::Release(DueMessage {
                send_at: *until,
                id: prepared.message_id,
            }));
            StoredOutcome::Queued {
                message_id: prepared.message_id,
            }
        }
        Decision::Deferred { .. } => return None,
    };
    if let Some(key) = &key {
        // A release keeps the record written when it was queued: the caller's retry still
        // gets "queued as this id", and the message's own state says the rest.
        if prepared.released_from.is_none() {
            let record = IdempotencyRecord {
                expires_at: prepared.expires_at,
                body_hash: prepared.body_hash,
                outcome,
            };
            batch.put(
                Family::Idempotency,
                idempotency_key(prepared.key_number.0, key),
                record.encode(),
            );
        }
    }
    if let (Decision::Refused(refusal), Some(_)) = (decision, prepared.released_from) {
        // Queued, then refused when its turn came (an opt-out, a paused template): the
        // caller was told "queued", so the refusal is kept where it can look the message up.
        batch.put(
            Family::Messages,
            message_key(prepared.message_id),
            refused_release(&prepared, refusal, now).encode(),
        );
        return None;
    }
    let Decision::Accepted(accepted) = decision else {
        return queued;
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
        expire_at: request.options.expire_at,
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
        accepted.market,
        accepted.price_micros,
    );
    Some(Followup::Dispatch(due))
}
