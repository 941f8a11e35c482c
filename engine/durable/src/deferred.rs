//! Sends queued until the rules allow them (the caller chose to queue, not to be refused).
//!
//! A deferred send the caller wants queued is written, in the same group commit as everything
//! else its shard decided, under (due time, message id) in
//! [`Family::Deferred`](wagate_store::Family::Deferred), with its idempotency record saying
//! "queued as this id". The releaser hands due records back to their
//! shards with their id; whatever the shard decides then (accepted, refused, or deferred
//! again) deletes the record in the same commit that writes the outcome, so a record is
//! released at most once and never lost across a crash.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::payload_packing;
use super::submission::Submission;
use wagate_rules::clock::Timestamp;
use wagate_rules::decision::{DeferReason, SendOptions, SendRequest};
use wagate_rules::topics::TopicSet;
use wagate_store::keys::deferred_key;

/// A queued send as stored: the decision request, the payload and the caller's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredRecord {
    pub id: u64,
    pub due: Timestamp,
    pub reason: DeferReason,
    pub submission: Submission,
}

/// The record's header before the payload, as written since the binary format: the reason as
/// its index in [`REASONS`]. Borrowed from the record to write it, owned when read.
#[derive(Serialize, Deserialize)]
struct Header<'a> {
    request: Cow<'a, SendRequest>,
    idempotency_key: Option<Cow<'a, str>>,
    reason: u8,
}

/// The header of records written before the binary format (still read: a queue survives an
/// upgrade).
#[derive(Deserialize)]
struct JsonHeader {
    request: SendRequest,
    idempotency_key: Option<String>,
    reason: String,
}

/// First byte of a record in the binary format. A JSON-era record starts with its header's
/// length as a u32 BE, whose first byte is 0 (headers are far below 16 MiB).
const BINARY: u8 = 1;
/// The binary format with the send's own consent topic (a byte) after the header.
const BINARY_WITH_TOPIC: u8 = 2;
/// The binary format with the send's options after the header: topic u8, expiry µs u64 LE
/// (0: none), the person's UTC offset in minutes i16 LE (`i16::MIN`: none).
const BINARY_WITH_OPTIONS: u8 = 3;
/// [`BINARY_WITH_OPTIONS`] and the send's sender pool after the offset, u16 LE (`u16::MAX`:
/// none), so that its release can fail over within the pool.
const BINARY_WITH_POOL: u8 = 4;
/// [`BINARY_WITH_POOL`] with the payload packed (`payload_packing`): Meta's request keys as
/// one byte each, a queued template send's record about 40 % of its size.
const PACKED: u8 = 5;
const NO_OFFSET: i16 = i16::MIN;
const NO_POOL: u16 = u16::MAX;

/// Each reason's byte in a record is its place here: new reasons go at the end.
const REASONS: [DeferReason; 9] = [
    DeferReason::TierLimit,
    DeferReason::PairRate,
    DeferReason::Throughput,
    DeferReason::MarketingCap,
    DeferReason::MarketingCooldown,
    DeferReason::Restricted,
    DeferReason::TemplatePaused,
    DeferReason::Scheduled,
    DeferReason::QuietHours,
];

impl DeferredRecord {
    pub fn key(&self) -> [u8; 16] {
        deferred_key(self.due.0, self.id)
    }

    /// `[5][header, postcard][topic u8][expire_at µs u64 LE][offset i16 LE][pool u16 LE]
    /// [payload, packed]`: the payload reads back exactly as the caller sent it (`[4]` and
    /// the payload as written when it cannot be packed). A bulk burst queues most of its
    /// sends, so the header is compact binary rather than JSON. (`[1][header][payload]` before
    /// sends named a topic, `[2][header][topic][payload]` before they had a validity, and `[3]`
    /// without the pool: still read.)
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.submission.payload.len());
        Self::encode_into(self.reason, &self.submission, &mut out);
        out
    }

    /// [`DeferredRecord::encode`] of a send queued for `reason`, appended to `out`: a queued
    /// send's record is written from the submission in place, without a copy of its payload.
    pub fn encode_into(reason: DeferReason, submission: &Submission, out: &mut Vec<u8>) {
        let header = Header {
            request: Cow::Borrowed(&submission.request),
            idempotency_key: submission.idempotency_key.as_deref().map(Cow::Borrowed),
            reason: REASONS
                .iter()
                .position(|r| *r == reason)
                .expect("every reason is listed") as u8,
        };
        let format_at = out.len();
        out.push(BINARY_WITH_POOL);
        *out = postcard::to_extend(&header, std::mem::take(out))
            .expect("a send request always serialises");
        let options = &submission.request.options;
        out.push(options.topic.0);
        out.extend_from_slice(&options.expire_at.map_or(0, |at| at.0).to_le_bytes());
        out.extend_from_slice(
            &options
                .utc_offset_minutes
                .unwrap_or(NO_OFFSET)
                .to_le_bytes(),
        );
        out.extend_from_slice(&options.pool.unwrap_or(NO_POOL).to_le_bytes());
        if payload_packing::pack_into(&submission.payload, out) {
            out[format_at] = PACKED;
        } else {
            out.extend_from_slice(&submission.payload);
        }
    }

    /// The (due time, message id) a record's key names.
    pub fn key_parts(key: &[u8]) -> Option<(Timestamp, u64)> {
        let due = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let id = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
        Some((Timestamp(due), id))
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Option<DeferredRecord> {
        let (due, id) = Self::key_parts(key)?;
        let mut options = SendOptions::default();
        let mut packed = None;
        let (header, payload): (Header, &[u8]) = match value.first()? {
            &BINARY => postcard::take_from_bytes(&value[1..]).ok()?,
            &BINARY_WITH_TOPIC => {
                let (header, rest): (Header, &[u8]) =
                    postcard::take_from_bytes(&value[1..]).ok()?;
                let (&byte, payload) = rest.split_first()?;
                options.topic = TopicSet(byte);
                (header, payload)
            }
            &format @ (BINARY_WITH_OPTIONS | BINARY_WITH_POOL | PACKED) => {
                let (header, rest): (Header, &[u8]) =
                    postcard::take_from_bytes(&value[1..]).ok()?;
                let (&byte, rest) = rest.split_first()?;
                options.topic = TopicSet(byte);
                let expire_at = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
                options.expire_at = (expire_at != 0).then_some(Timestamp(expire_at));
                let offset = i16::from_le_bytes(rest.get(8..10)?.try_into().ok()?);
                options.utc_offset_minutes = (offset != NO_OFFSET).then_some(offset);
                let mut rest = &rest[10..];
                if format != BINARY_WITH_OPTIONS {
                    let pool = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
                    options.pool = (pool != NO_POOL).then_some(pool);
                    rest = &rest[2..];
                }
                if format == PACKED {
                    packed = Some(payload_packing::unpack(rest));
                }
                (header, rest)
            }
            0 => {
                let length = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
                let old: JsonHeader = serde_json::from_slice(value.get(4..4 + length)?).ok()?;
                let reason = REASONS.iter().position(|r| r.name() == old.reason)? as u8;
                let header = Header {
                    request: Cow::Owned(old.request),
                    idempotency_key: old.idempotency_key.map(Cow::Owned),
                    reason,
                };
                (header, &value[4 + length..])
            }
            _ => return None,
        };
        Some(DeferredRecord {
            id,
            due,
            reason: *REASONS.get(usize::from(header.reason))?,
            submission: Submission {
                request: SendRequest {
                    options,
                    ..header.request.into_owned()
                },
                payload: packed.unwrap_or_else(|| payload.to_vec()),
                idempotency_key: header.idempotency_key.map(Cow::into_owned),
                queue_when_deferred: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::decision::Message;
    use wagate_rules::ids::{Msisdn, PhoneNumberId};

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
                    options: Default::default(),
                },
                payload: b"{\"binary\":\"\xff\"}".to_vec(),
                idempotency_key: Some("k1".into()),
                queue_when_deferred: true,
            },
        };
        let encoded = record.encode();
        assert_eq!(encoded[0], PACKED);
        let back = DeferredRecord::decode(&record.key(), &encoded).unwrap();
        assert_eq!(back, record);
        // A payload that cannot be packed (it holds a code byte) is kept as written.
        let mut raw = record.clone();
        raw.submission.payload = b"{\"to\":\"\x01\"}".to_vec();
        let written = raw.encode();
        assert_eq!(written[0], BINARY_WITH_POOL);
        assert!(written.ends_with(&raw.submission.payload));
        assert_eq!(DeferredRecord::decode(&raw.key(), &written), Some(raw));
        // Meta's template request, as a bulk upload queues it: its record is under half.
        let body = br#"{"messaging_product":"whatsapp","to":"+16505550123","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"order 123456"}]}]}}"#;
        let mut bulk = record.clone();
        bulk.submission.payload = body.to_vec();
        let packed = bulk.encode();
        assert!(packed.len() * 2 < body.len() + 61, "{} bytes", packed.len());
        assert_eq!(DeferredRecord::decode(&bulk.key(), &packed), Some(bulk));
        // A send naming a topic keeps it; one written before topics reads as none.
        let mut named = record.clone();
        named.submission.request.options.topic = TopicSet(1 << 3);
        named.submission.request.options.expire_at = Some(Timestamp(9_000_000));
        named.submission.request.options.utc_offset_minutes = Some(-270);
        named.submission.request.options.pool = Some(3);
        assert_eq!(
            DeferredRecord::decode(&named.key(), &named.encode()).as_ref(),
            Some(&named)
        );
        // As written before pools: no pool.
        // (Its payload holds no piece of Meta's request: packed, it is as written.)
        let mut before_pools = named.encode();
        assert!(before_pools.ends_with(&named.submission.payload));
        before_pools[0] = BINARY_WITH_OPTIONS;
        let pool_at = before_pools.len() - named.submission.payload.len() - 2;
        before_pools.drain(pool_at..pool_at + 2);
        let read = DeferredRecord::decode(&named.key(), &before_pools).unwrap();
        assert_eq!(read.submission.request.options.pool, None);
        assert_eq!(
            read.submission.request.options.utc_offset_minutes,
            Some(-270)
        );
        assert_eq!(read.submission.payload, named.submission.payload);
        let mut older = vec![BINARY];
        let header = Header {
            request: Cow::Borrowed(&named.submission.request),
            idempotency_key: Some(Cow::Borrowed("k1")),
            reason: 0,
        };
        older = postcard::to_extend(&header, older).unwrap();
        older.extend_from_slice(&record.submission.payload);
        assert_eq!(
            DeferredRecord::decode(&record.key(), &older).as_ref(),
            Some(&record)
        );
        assert!(deferred_key(4_999_999, 99) < record.key());
        assert!(DeferredRecord::decode(&record.key(), b"\0\0\0\x09{}").is_none());
        // Cut short, or of an unknown format: not a record.
        assert!(DeferredRecord::decode(&record.key(), &encoded[..5]).is_none());
        assert!(DeferredRecord::decode(&record.key(), b"\x06abc").is_none());
        // As written with the topic alone.
        let mut topic_only = vec![BINARY_WITH_TOPIC];
        let header = Header {
            request: Cow::Borrowed(&record.submission.request),
            idempotency_key: Some(Cow::Borrowed("k1")),
            reason: 0,
        };
        topic_only = postcard::to_extend(&header, topic_only).unwrap();
        topic_only.push(1 << 3);
        topic_only.extend_from_slice(&record.submission.payload);
        let read = DeferredRecord::decode(&record.key(), &topic_only).unwrap();
        assert_eq!(read.submission.request.options.topic, TopicSet(1 << 3));
        assert_eq!(read.submission.payload, record.submission.payload);
    }

    #[test]
    fn records_written_with_a_json_header_are_still_read() {
        // As the JSON-era encoder wrote it: [header length u32 BE][header JSON][payload].
        let header = serde_json::json!({
            "request": {
                "number": 7,
                "to": 16_505_551_234u64,
                "message": {"Template": {"name": "order_update", "language": "en_US",
                    "header": null, "body": [{"name": null, "text": "Ana"}], "buttons": []}}
            },
            "idempotency_key": "k2",
            "reason": "throughput",
        })
        .to_string();
        let mut value = (header.len() as u32).to_be_bytes().to_vec();
        value.extend_from_slice(header.as_bytes());
        value.extend_from_slice(b"{\"to\":\"+16505551234\"}");
        let key = deferred_key(9_000_000, 43);
        let record = DeferredRecord::decode(&key, &value).unwrap();
        assert_eq!((record.id, record.due), (43, Timestamp(9_000_000)));
        assert_eq!(record.reason, DeferReason::Throughput);
        assert_eq!(record.submission.idempotency_key.as_deref(), Some("k2"));
        assert_eq!(record.submission.payload, b"{\"to\":\"+16505551234\"}");
        assert_eq!(
            record.submission.request.message,
            Message::Template(wagate_rules::template::model::TemplateSend::new(
                "order_update",
                "en_US",
                vec![wagate_rules::template::model::TextParam::positional("Ana")],
            ))
        );
    }
}
