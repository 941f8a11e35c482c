//! An accepted message as stored: what to send, when, at what price, and how dispatch went.

use crate::payload_packing;
use wagate_rules::clock::Timestamp;
use wagate_rules::decision::Accepted;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::rate_cards::RateCards;
use wagate_rules::template::model::Category;
use wagate_store::keys::{LedgerRowKey, LedgerSide, Reader, Writer};

/// Where a message is on its way to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchStatus {
    /// Accepted and durable, waiting for its send slot.
    Pending = 0,
    /// Handed to the upstream; if the engine stops now, the upstream is asked on restart.
    InFlight = 1,
    /// The upstream took it (its id is kept).
    Sent = 2,
    /// The upstream refused it for good.
    Failed = 3,
    /// Queued when the rules made it wait, then refused by them when its turn came.
    Refused = 4,
    /// Queued (scheduled, or waiting on the rules), then cancelled by its sender.
    Cancelled = 5,
}

impl DispatchStatus {
    fn from_u8(value: u8) -> Option<DispatchStatus> {
        Some(match value {
            0 => DispatchStatus::Pending,
            1 => DispatchStatus::InFlight,
            2 => DispatchStatus::Sent,
            3 => DispatchStatus::Failed,
            4 => DispatchStatus::Refused,
            5 => DispatchStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DispatchStatus::Pending => "pending",
            DispatchStatus::InFlight => "in_flight",
            DispatchStatus::Sent => "sent",
            DispatchStatus::Failed => "failed",
            DispatchStatus::Refused => "refused",
            DispatchStatus::Cancelled => "cancelled",
        }
    }
}

/// What the upstream reported of a sent message (status webhooks). It only moves forward:
/// none, sent, delivered, read; failed only before delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Delivery {
    #[default]
    None = 0,
    Sent = 1,
    Delivered = 2,
    Read = 3,
    Failed = 4,
}

impl Delivery {
    /// The state's name on the wire: `none`, `sent`, `delivered`, `read`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Delivery::None => "none",
            Delivery::Sent => "sent",
            Delivery::Delivered => "delivered",
            Delivery::Read => "read",
            Delivery::Failed => "failed",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Option<Delivery> {
        Some(match value {
            0 => Delivery::None,
            1 => Delivery::Sent,
            2 => Delivery::Delivered,
            3 => Delivery::Read,
            4 => Delivery::Failed,
            _ => return None,
        })
    }

    /// Whether `next` may replace `self` (statuses arrive out of order and repeated).
    pub fn advances_to(self, next: Delivery) -> bool {
        match next {
            Delivery::Failed => matches!(self, Delivery::None | Delivery::Sent),
            _ => self != Delivery::Failed && next > self,
        }
    }
}

/// wagate's id for a message, as callers see it.
pub use wagate_rules::ids::{message_id_text, parse_message_id};

/// What the dispatcher keeps of a waiting message: when, and which. The record itself stays in
/// the outbox until it is due, so a backlog costs 16 bytes a message in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DueMessage {
    pub send_at: Timestamp,
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub accepted_at: Timestamp,
    pub decision: Accepted,
    pub status: DispatchStatus,
    pub attempts: u32,
    /// The upstream's id once sent (Meta's wamid), or its error once failed.
    pub upstream: String,
    pub idempotency_key: String,
    /// The message exactly as it goes upstream.
    pub payload: Vec<u8>,
    pub delivery: Delivery,
    /// Meta's error code when delivery failed (0 otherwise).
    pub delivery_error: u32,
    /// Never handed over from this instant on (the send's validity): dropped instead.
    pub expire_at: Option<Timestamp>,
}
/// Writes an acceptance (send slot, price, category, flags): in messages and idempotency records.
pub(crate) fn write_accepted(writer: &mut Writer, accepted: &Accepted) {
    writer
        .u64(accepted.send_at.0)
        .u64(accepted.price_micros)
        .u8(accepted.category as u8)
        .u8(u8::from(accepted.business_initiated) | u8::from(accepted.new_unique_recipient) << 1);
}

pub(crate) fn read_accepted(reader: &mut Reader) -> Option<Accepted> {
    let send_at = Timestamp(reader.u64()?);
    let price_micros = reader.u64()?;
    let category = *Category::ALL.get(usize::from(reader.u8()?))?;
    let flags = reader.u8()?;
    Some(Accepted {
        category,
        business_initiated: flags & 1 != 0,
        new_unique_recipient: flags & 2 != 0,
        price_micros,
        // Not stored: the card's market of the recipient (`RateCards::market_at`).
        market: wagate_rules::volume::MarketId::NONE,
        send_at,
        // Kept with a message (after its other fields), not in idempotency records.
        consent_at: 0,
    })
}

impl StoredMessage {
    /// This message as a send that failed for good, for the shard that takes back its effects.
    pub fn failed_send(&self) -> wagate_rules::contact_events::FailedSend {
        wagate_rules::contact_events::FailedSend {
            number: self.number,
            to: self.to,
            accepted_at: self.accepted_at,
            accepted: self.decision,
        }
    }

    /// Marks this message as not charged (it failed for good: Meta charges neither refused
    /// nor undelivered messages) and adds to `batch` the ledger's reversal of its acceptance
    /// (in its recipient's market on `cards`). Written with the failure itself, so it happens
    /// once.
    pub fn uncharge(&mut self, batch: &mut wagate_store::Batch, cards: &RateCards) {
        let at = self.accepted_at.secs();
        let row = LedgerRowKey {
            number: self.number.0,
            day: wagate_rules::price::unix_day(at),
            category: self.decision.category as u8,
            side: LedgerSide::Estimate,
            market: cards.market_name(cards.market_at(at, self.to)),
        };
        batch.add(
            wagate_store::Family::Ledger,
            wagate_store::keys::ledger_key(&row),
            0u64.wrapping_sub(1),
            0u64.wrapping_sub(self.decision.price_micros),
        );
        self.decision.price_micros = 0;
    }

    pub fn due(&self) -> DueMessage {
        DueMessage {
            send_at: self.decision.send_at,
            id: self.id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.upstream.len() + self.idempotency_key.len() + self.payload.len(),
        );
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out` (a batch's buffer on the commit path).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut writer = Writer {
            bytes: std::mem::take(out),
        };
        writer
            .u64(self.id)
            .u64(self.number.0)
            .u64(self.to.digits())
            .u64(self.accepted_at.0);
        write_accepted(&mut writer, &self.decision);
        writer
            .u8(self.status as u8)
            .u32(self.attempts)
            .bytes(self.upstream.as_bytes())
            .bytes(self.idempotency_key.as_bytes())
            .u32(0);
        // The payload packed where it can be (see `payload_packing`), after its length.
        let start = writer.bytes.len();
        let packed = payload_packing::pack_into(&self.payload, &mut writer.bytes);
        if !packed {
            writer.bytes.extend_from_slice(&self.payload);
        }
        let length = (writer.bytes.len() - start) as u32;
        writer.bytes[start - 4..start].copy_from_slice(&length.to_le_bytes());
        writer
            .u8(self.delivery as u8)
            .u32(self.delivery_error)
            .u32(self.decision.consent_at)
            .u64(self.expire_at.map_or(0, |at| at.0))
            .u8(u8::from(packed));
        *out = writer.bytes;
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredMessage> {
        let mut reader = Reader::new(bytes);
        let id = reader.u64()?;
        let number = PhoneNumberId(reader.u64()?);
        let to = Msisdn::from_digits(reader.u64()?).ok()?;
        let accepted_at = Timestamp(reader.u64()?);
        let mut decision = read_accepted(&mut reader)?;
        let status = DispatchStatus::from_u8(reader.u8()?)?;
        let attempts = reader.u32()?;
        let upstream = reader.string()?;
        let idempotency_key = reader.string()?;
        let payload = reader.bytes()?;
        let delivery = Delivery::from_u8(reader.u8()?)?;
        let delivery_error = reader.u32()?;
        // Messages written before these were kept end early: their consent time reads as
        // never, their validity as none, their payload as written (not packed).
        decision.consent_at = reader.u32().unwrap_or(0);
        let expire_at = reader.u64().filter(|&at| at != 0).map(Timestamp);
        let payload = match reader.u8() {
            Some(1) => payload_packing::unpack(payload),
            _ => payload.to_vec(),
        };
        Some(StoredMessage {
            id,
            number,
            to,
            accepted_at,
            decision,
            status,
            attempts,
            upstream,
            idempotency_key,
            payload,
            delivery,
            delivery_error,
            expire_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let message = StoredMessage {
            id: 77,
            number: PhoneNumberId(106_540_352_242_922),
            to: Msisdn::from_digits(16_505_551_234).unwrap(),
            accepted_at: Timestamp(1_767_225_600_000_000),
            decision: Accepted {
                category: Category::Utility,
                business_initiated: true,
                new_unique_recipient: false,
                price_micros: 50_000,
                market: wagate_rules::volume::MarketId::NONE,
                send_at: Timestamp(1_767_225_600_012_500),
                consent_at: 90_000,
            },
            status: DispatchStatus::InFlight,
            attempts: 2,
            upstream: String::new(),
            idempotency_key: "order-17".into(),
            payload: br#"{"type":"text"}"#.to_vec(),
            delivery: Delivery::Delivered,
            delivery_error: 0,
            expire_at: Some(Timestamp(1_767_225_660_000_000)),
        };
        let written = message.encode();
        assert_eq!(StoredMessage::decode(&written), Some(message.clone()));
        assert_eq!(written.last(), Some(&1), "packed");
        // A payload holding a code byte is kept as written.
        let mut raw = message.clone();
        raw.payload = b"{\"to\":\"\x02\"}".to_vec();
        let kept = raw.encode();
        assert_eq!(kept.last(), Some(&0));
        assert_eq!(StoredMessage::decode(&kept), Some(raw));
        // Written before packing (a payload as written, one byte shorter), before the
        // validity was kept (8 more), and before the consent time (4 more): read as such.
        let mut plain = message.clone();
        plain.payload = br#"{"kind":1}"#.to_vec();
        let older = plain.encode();
        assert!(
            older.windows(10).any(|w| w == plain.payload),
            "nothing to pack"
        );
        let older = &older[..older.len() - 1];
        assert_eq!(StoredMessage::decode(older), Some(plain.clone()));
        let mut expected = plain.clone();
        expected.expire_at = None;
        assert_eq!(
            StoredMessage::decode(&older[..older.len() - 8]),
            Some(expected.clone())
        );
        expected.decision.consent_at = 0;
        assert_eq!(
            StoredMessage::decode(&older[..older.len() - 12]),
            Some(expected)
        );
        assert_eq!(parse_message_id(&message_id_text(77)), Some(77));
        assert_eq!(StoredMessage::decode(&[1, 2, 3]), None);
        assert!(Delivery::Sent.advances_to(Delivery::Read));
        assert!(!Delivery::Read.advances_to(Delivery::Delivered));
        assert!(!Delivery::Delivered.advances_to(Delivery::Failed));
        assert!(!Delivery::Failed.advances_to(Delivery::Read));
    }
}
