//! Sends queued until the rules allow them (the caller chose to queue, not to be refused).
//!
//! A deferred send the caller wants queued is written, in the same group commit as everything
//! else its shard decided, under (due time, message id) in [`Family::Deferred`], with its
//! idempotency record saying "queued as this id". The releaser hands due records back to their
//! shards with their id; whatever the shard decides then (accepted, refused, or deferred
//! again) deletes the record in the same commit that writes the outcome, so a record is
//! released at most once and never lost across a crash.

use serde::{Deserialize, Serialize};

use super::submission::Submission;
use crate::clock::Timestamp;
use crate::decision::{DeferReason, SendRequest};
use crate::store::keys::deferred_key;

/// A queued send as stored: the decision request, the payload and the caller's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredRecord {
    pub id: u64,
    pub due: Timestamp,
    pub reason: DeferReason,
    pub submission: Submission,
}

#[derive(Serialize, Deserialize)]
struct Header {
    request: SendRequest,
    idempotency_key: Option<String>,
    reason: String,
}

const REASONS: [DeferReason; 6] = [
    DeferReason::TierLimit,
    DeferReason::PairRate,
    DeferReason::Throughput,
    DeferReason::MarketingCap,
    DeferReason::MarketingCooldown,
    DeferReason::Restricted,
];

impl DeferredRecord {
    pub fn key(&self) -> [u8; 16] {
        deferred_key(self.due.0, self.id)
    }

    /// `[header length: u32 BE][header JSON][payload]`: the payload stays as the caller sent it.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            request: self.submission.request.clone(),
            idempotency_key: self.submission.idempotency_key.clone(),
            reason: self.reason.name().to_string(),
        })
        .expect("a send request always serialises");
        let mut out = Vec::with_capacity(4 + header.len() + self.submission.payload.len());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.submission.payload);
        out
    }

    /// The (due time, message id) a record's key names.
    pub fn key_parts(key: &[u8]) -> Option<(Timestamp, u64)> {
        let due = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let id = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
        Some((Timestamp(due), id))
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Option<DeferredRecord> {
        let (due, id) = Self::key_parts(key)?;
        let length = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
        let header: Header = serde_json::from_slice(value.get(4..4 + length)?).ok()?;
        let reason = REASONS.into_iter().find(|r| r.name() == header.reason)?;
        Some(DeferredRecord {
            id,
            due,
            reason,
            submission: Submission {
                request: header.request,
                payload: value[4 + length..].to_vec(),
                idempotency_key: header.idempotency_key,
                queue_when_deferred: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Message;
    use crate::ids::{Msisdn, PhoneNumberId};

    #[test]
    fn a_record_round_trips_and_sorts_by_due_time() {
        let record = DeferredRecord {
            id: 42,
            due: Timestamp(5_000_000),
            reason: DeferReason::TierLimit,
            submission: Submission {
                request: SendRequest {
                    number: PhoneNumberId(7),
                    to: Msisdn::parse("+16505551234").unwrap(),
                    message: Message::text("hi"),
                },
                payload: b"{\"binary\":\"\xff\"}".to_vec(),
                idempotency_key: Some("k1".into()),
                queue_when_deferred: true,
            },
        };
        let back = DeferredRecord::decode(&record.key(), &record.encode()).unwrap();
        assert_eq!(back, record);
        assert!(deferred_key(4_999_999, 99) < record.key());
        assert!(DeferredRecord::decode(&record.key(), b"\0\0\0\x09{}").is_none());
    }
}
