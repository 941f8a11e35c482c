//! Idempotency records: what a request with a given key came to, kept for the retention so
//! that a retry gets the same answer and never a second message.

use super::message::{read_accepted, write_accepted};
use wagate_rules::decision::Accepted;
use wagate_store::keys::{Reader, Writer};

/// What a request came to, in the form it is replayed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredOutcome {
    Accepted {
        message_id: u64,
        accepted: Accepted,
    },
    Refused {
        code: Option<u32>,
        name: String,
        reason: String,
    },
    /// Queued until the rules allow it, as this message id.
    Queued {
        message_id: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyRecord {
    /// Unix seconds; the record means nothing after it (and compaction removes it).
    pub expires_at: u64,
    /// A hash of what the request asked for: the same key with another body is refused.
    pub body_hash: u64,
    pub outcome: StoredOutcome,
}

/// The hash a retry with the same key must match: number, recipient and the request's JSON in
/// a canonical form (keys sorted, no white space, escapes resolved), so a client that builds
/// the same request again, in another key order or spacing, is recognised; over the raw bytes
/// when the payload is not JSON.
pub(crate) fn request_hash(number: u64, to: u64, payload: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(value) => body_hash(
            number,
            to,
            &serde_json::to_vec(&value).expect("a JSON value serialises"),
        ),
        Err(_) => body_hash(number, to, payload),
    }
}

/// The hash of a request's body as bytes: number, recipient and payload (what records written
/// before [`request_hash`] hold).
pub(crate) fn body_hash(number: u64, to: u64, payload: &[u8]) -> u64 {
    let mut hash = wagate_rules::hash::mix64(number ^ to.rotate_left(17));
    for chunk in payload.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = wagate_rules::hash::mix64(hash ^ u64::from_le_bytes(word));
    }
    wagate_rules::hash::mix64(hash ^ payload.len() as u64)
}

impl IdempotencyRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer
            .bytes
            .extend_from_slice(&self.expires_at.to_be_bytes());
        writer.u64(self.body_hash);
        match &self.outcome {
            StoredOutcome::Accepted {
                message_id,
                accepted,
            } => {
                writer.u8(0).u64(*message_id);
                write_accepted(&mut writer, accepted);
            }
            StoredOutcome::Refused { code, name, reason } => {
                writer
                    .u8(1)
                    .u32(code.unwrap_or(0))
                    .bytes(name.as_bytes())
                    .bytes(reason.as_bytes());
            }
            StoredOutcome::Queued { message_id } => {
                writer.u8(2).u64(*message_id);
            }
        }
        writer.bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<IdempotencyRecord> {
        let expires_at = wagate_store::expires_at(bytes)?;
        let mut reader = Reader::new(&bytes[8..]);
        let body_hash = reader.u64()?;
        let outcome = match reader.u8()? {
            0 => StoredOutcome::Accepted {
                message_id: reader.u64()?,
                accepted: read_accepted(&mut reader)?,
            },
            1 => {
                let code = reader.u32()?;
                StoredOutcome::Refused {
                    code: (code != 0).then_some(code),
                    name: reader.string()?,
                    reason: reader.string()?,
                }
            }
            2 => StoredOutcome::Queued {
                message_id: reader.u64()?,
            },
            _ => return None,
        };
        Some(IdempotencyRecord {
            expires_at,
            body_hash,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::clock::Timestamp;
    use wagate_rules::template::model::Category;

    #[test]
    fn records_round_trip_and_hashes_tell_bodies_apart() {
        for outcome in [
            StoredOutcome::Accepted {
                message_id: 9,
                accepted: Accepted {
                    category: Category::Marketing,
                    business_initiated: true,
                    new_unique_recipient: true,
                    price_micros: 50_000,
                    market: wagate_rules::volume::MarketId::NONE,
                    send_at: Timestamp(123),
                    consent_at: 0,
                },
            },
            StoredOutcome::Refused {
                code: Some(131_047),
                name: "outside_service_window".into(),
                reason: "more than 24 hours".into(),
            },
            StoredOutcome::Queued { message_id: 11 },
        ] {
            let record = IdempotencyRecord {
                expires_at: 1_800_000_000,
                body_hash: 5,
                outcome,
            };
            let bytes = record.encode();
            assert_eq!(wagate_store::expires_at(&bytes), Some(1_800_000_000));
            assert_eq!(IdempotencyRecord::decode(&bytes), Some(record));
        }
        assert_ne!(body_hash(1, 2, b"hello"), body_hash(1, 2, b"hellp"));
        assert_ne!(body_hash(1, 2, b"hello"), body_hash(1, 3, b"hello"));
        assert_ne!(body_hash(1, 2, b""), body_hash(1, 2, b"\0"));
    }

    #[test]
    fn the_same_request_written_another_way_hashes_alike() {
        let first = br#"{"to":"+16505551234","type":"text","text":{"body":"caf\u00e9"}}"#;
        let again = b"{ \"text\": {\"body\": \"caf\xc3\xa9\"}, \"type\":\"text\",\n \"to\":\"+16505551234\" }";
        assert_eq!(request_hash(1, 2, first), request_hash(1, 2, again));
        let other = br#"{"to":"+16505551234","type":"text","text":{"body":"cafe"}}"#;
        assert_ne!(request_hash(1, 2, first), request_hash(1, 2, other));
        assert_eq!(
            request_hash(1, 2, b"not json"),
            body_hash(1, 2, b"not json")
        );
    }
}
