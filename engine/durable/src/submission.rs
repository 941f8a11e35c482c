//! A send as the durable engine takes it: the decision request, the payload for the upstream,
//! and an optional idempotency key; and the writes an accepted or refused one turns into.

use crate::deferred::DeferredRecord;
use crate::idempotency::{IdempotencyRecord, StoredOutcome};
use crate::message::{Delivery, DispatchStatus, DueMessage, StoredMessage};
use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::request::{parse_send, ParsedSend};
use wagate_rules::clock::Timestamp;
use wagate_rules::decision::{Decision, SendRequest};
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::price::unix_day;
use wagate_store::keys::{idempotency_key, ledger_key, message_key};
use wagate_store::{Batch, Family};

/// One send as the engine takes it: what the rules judge (`request`) and what goes to Meta
/// (`payload`). Made from the Cloud API body with [`Submission::from_send_body`], the two
/// cannot disagree (the server and an embedder take this way); a literal is for tests and
/// benchmarks that decide without a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub request: SendRequest,
    /// The message exactly as it goes upstream (for the Cloud API, its JSON body).
    pub payload: Vec<u8>,
    pub idempotency_key: Option<String>,
    /// When the rules make it wait (tier limit, pacing): keep it durably and send it when
    /// they allow, instead of answering "deferred" and forgetting it.
    pub queue_when_deferred: bool,
}

/// A send body read as the Cloud API reads it: the submission, and the recipient as the caller
/// wrote it (Meta echoes it in `contacts[].input`).
#[derive(Debug, Clone)]
pub struct ReadSend {
    pub submission: Submission,
    pub input: String,
}

impl Submission {
    /// The send Meta's `POST /{phone_number_id}/messages` body asks for, from `number`: the
    /// decision's request is read from the body itself (recipient, type, template and its
    /// parameters), and the body goes to Meta as it is. A body Meta would refuse is refused
    /// here with Meta's error.
    pub fn from_send_body(
        number: PhoneNumberId,
        body: Vec<u8>,
        idempotency_key: Option<String>,
        queue_when_deferred: bool,
    ) -> Result<ReadSend, ApiError> {
        let ParsedSend {
            input, to, message, ..
        } = parse_send(&body)?;
        Ok(ReadSend {
            submission: Submission {
                request: SendRequest {
                    number,
                    to,
                    message,
                },
                payload: body,
                idempotency_key,
                queue_when_deferred,
            },
            input,
        })
    }
}

/// A submission after the engine gave it an id and, if keyed, a body hash and expiry.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub submission: Submission,
    pub message_id: u64,
    pub body_hash: u64,
    /// Unix seconds at which the idempotency record lapses.
    pub expires_at: u64,
    /// The queue record this submission is released from; whatever is decided removes it.
    pub released_from: Option<[u8; 16]>,
}

/// Ledger counts of one worker batch, summed per (number, day, category) so that a batch
/// writes one counter update per row rather than one per message.
#[derive(Default)]
pub struct LedgerDeltas {
    rows: wagate_rules::hash::MixHashMap<(u64, u32, u8), (u64, u64)>,
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

fn refused_release(
    prepared: &Prepared,
    refusal: &wagate_rules::decision::Refusal,
    now: Timestamp,
) -> StoredMessage {
    let request = &prepared.submission.request;
    StoredMessage {
        id: prepared.message_id,
        number: request.number,
        to: request.to,
        accepted_at: now,
        decision: wagate_rules::decision::Accepted {
            category: wagate_rules::template::model::Category::Service,
            business_initiated: false,
            new_unique_recipient: false,
            price_micros: 0,
            send_at: now,
        },
        status: DispatchStatus::Refused,
        attempts: 0,
        upstream: format!("{}: {refusal}", refusal.name()),
        idempotency_key: prepared
            .submission
            .idempotency_key
            .clone()
            .unwrap_or_default(),
        payload: Vec::new(),
        delivery: Delivery::None,
        delivery_error: refusal.meta_code().unwrap_or(0),
    }
}

/// What follows a recorded outcome once its commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    /// Accepted: the dispatcher sends it at its slot.
    Dispatch(DueMessage),
    /// Queued: the releaser decides it again when due.
    Release(DueMessage),
}

/// Adds the writes of a decided submission to `batch` (its ledger count to `ledger`); returns
/// what must happen next, if anything. Deferred submissions the caller did not want queued
/// write nothing: nothing happened.
pub fn record_outcome(
    prepared: Prepared,
    decision: &Decision,
    now: Timestamp,
    batch: &mut Batch,
    ledger: &mut LedgerDeltas,
) -> Option<Followup> {
    let request = &prepared.submission.request;
    let key = prepared.submission.idempotency_key.clone();
    if let Some(queued) = prepared.released_from {
        batch.delete(Family::Deferred, queued);
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
            let record = DeferredRecord {
                id: prepared.message_id,
                due: *until,
                reason: *reason,
                submission: prepared.submission.clone(),
            };
            batch.put(Family::Deferred, record.key(), record.encode());
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
                idempotency_key(request.number.0, key),
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
    Some(Followup::Dispatch(due))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::decision::Message;

    const NUMBER: PhoneNumberId = PhoneNumberId(1001);

    #[test]
    fn a_send_body_is_judged_by_what_it_asks_for_and_goes_to_meta_as_written() {
        let template =
            br#"{"messaging_product":"whatsapp","to":"+1 650 555 1234","type":"template",
            "template":{"name":"order_update","language":{"code":"en_US"}}}"#;
        let read = Submission::from_send_body(NUMBER, template.to_vec(), Some("k".into()), true)
            .expect("a valid template send");
        let Message::Template(send) = &read.submission.request.message else {
            panic!("not a template: {:?}", read.submission.request.message);
        };
        assert_eq!(send.name, "order_update");
        assert_eq!(read.submission.request.to.digits(), 16_505_551_234);
        assert_eq!(read.input, "+1 650 555 1234");
        assert_eq!(read.submission.payload, template.to_vec());
        assert_eq!(read.submission.idempotency_key.as_deref(), Some("k"));
        assert!(read.submission.queue_when_deferred);

        let text = br#"{"messaging_product":"whatsapp","to":"16505551234","type":"text",
            "text":{"body":"hi"}}"#;
        let read = Submission::from_send_body(NUMBER, text.to_vec(), None, false).unwrap();
        assert!(matches!(
            read.submission.request.message,
            Message::Text { .. }
        ));
    }

    #[test]
    fn a_body_meta_would_refuse_is_refused_with_metas_error() {
        let refused = Submission::from_send_body(NUMBER, b"{not json".to_vec(), None, false)
            .expect_err("not JSON");
        assert_eq!((refused.http_status, refused.code), (400, 100));
        assert!(refused.to_string().starts_with("(#100)"), "{refused}");
    }
}
