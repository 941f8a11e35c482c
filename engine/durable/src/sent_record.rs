//! What status webhooks need of a sent message, kept under its wamid in
//! [`Family::UpstreamIds`]: wagate's id, its delivery state, and what its first delivery
//! counts for (the delivery path). A status reads and rewrites this small record, not the
//! whole message with its payload; `Wagate::message` reads the delivery
//! state from here.
//!
//! `[id u64][delivery u8][error u32][business-initiated u8][number u64][person u64][send
//! slot, Unix seconds, u64]`, big-endian, then `[campaign u64]` for a campaign's send (its
//! delivery counted for the campaign). A record written before it carried the delivery state
//! is the id alone (8 bytes); its message then holds the state and is read instead.

use super::message::{Delivery, StoredMessage};
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_store::keys::message_key;
use wagate_store::{Batch, Family, Store, StoreError};

const FAMILY: Family = Family::UpstreamIds;
const LEN: usize = 38;
/// With the campaign it belongs to.
const CAMPAIGN_LEN: usize = LEN + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SentRecord {
    pub id: u64,
    pub delivery: Delivery,
    /// Meta's error code when delivery failed (0 otherwise).
    pub error: u32,
    pub business_initiated: bool,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    pub send_at: Timestamp,
    /// The campaign it was sent for (0: none).
    pub campaign: u64,
}

impl SentRecord {
    /// The record of `message`, sent.
    pub(crate) fn of(message: &StoredMessage) -> SentRecord {
        SentRecord {
            id: message.id,
            delivery: message.delivery,
            error: message.delivery_error,
            business_initiated: message.decision.business_initiated,
            number: message.number,
            to: message.to,
            send_at: message.decision.send_at,
            campaign: crate::campaigns::campaign_of(&message.idempotency_key),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            0u8;
            if self.campaign == 0 {
                LEN
            } else {
                CAMPAIGN_LEN
            }
        ];
        out[..8].copy_from_slice(&self.id.to_be_bytes());
        out[8] = self.delivery as u8;
        out[9..13].copy_from_slice(&self.error.to_be_bytes());
        out[13] = u8::from(self.business_initiated);
        out[14..22].copy_from_slice(&self.number.0.to_be_bytes());
        out[22..30].copy_from_slice(&self.to.digits().to_be_bytes());
        out[30..LEN].copy_from_slice(&self.send_at.unix_secs().to_be_bytes());
        if self.campaign != 0 {
            out[LEN..].copy_from_slice(&self.campaign.to_be_bytes());
        }
        out
    }

    fn decode(all: &[u8]) -> Option<SentRecord> {
        let campaign = match all.len() {
            LEN => 0,
            CAMPAIGN_LEN => u64::from_be_bytes(all[LEN..].try_into().ok()?),
            _ => return None,
        };
        let bytes: &[u8; LEN] = all[..LEN].try_into().ok()?;
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        Some(SentRecord {
            id: id_of(bytes)?,
            delivery: Delivery::from_u8(bytes[8])?,
            error: u32::from_be_bytes(bytes[9..13].try_into().expect("4")),
            business_initiated: bytes[13] != 0,
            number: PhoneNumberId(u64_at(14)),
            to: Msisdn::from_digits(u64_at(22)).ok()?,
            send_at: Timestamp::from_unix_secs(u64_at(30)),
            campaign,
        })
    }

    /// The message `self` says its delivery is at: `message` with this record's state.
    pub(crate) fn overlay(&self, message: &mut StoredMessage) {
        message.delivery = self.delivery;
        message.delivery_error = self.error;
    }
}

/// Puts `record` of the message sent as `wamid` in `batch`.
pub(crate) fn write(batch: &mut Batch, wamid: &str, record: &SentRecord) {
    batch.put(FAMILY, wamid.as_bytes(), record.encode());
}

/// The message id a stored value starts with (both forms do).
fn id_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// wagate's id of the message sent as `wamid`, once settled.
pub(crate) fn message_id(store: &dyn Store, wamid: &str) -> Result<Option<u64>, StoreError> {
    Ok(store
        .get(FAMILY, wamid.as_bytes())?
        .and_then(|bytes| id_of(&bytes)))
}

/// The record of the message sent as `wamid`, once settled.
pub(crate) fn read(store: &dyn Store, wamid: &str) -> Result<Option<SentRecord>, StoreError> {
    let Some(bytes) = store.get(FAMILY, wamid.as_bytes())? else {
        return Ok(None);
    };
    if let Some(record) = SentRecord::decode(&bytes) {
        return Ok(Some(record));
    }
    let Some(id) = id_of(&bytes).filter(|_| bytes.len() == 8) else {
        return Ok(None);
    };
    let message = store
        .get(Family::Messages, &message_key(id))?
        .and_then(|b| StoredMessage::decode(&b));
    Ok(message.as_ref().map(SentRecord::of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_refuses_other_lengths() {
        let record = SentRecord {
            id: 7,
            delivery: Delivery::Failed,
            error: 131_026,
            business_initiated: true,
            number: PhoneNumberId(106_540_352_242_922),
            to: Msisdn::from_digits(16_505_550_001).unwrap(),
            send_at: Timestamp::from_unix_secs(1_767_225_600),
            campaign: 0,
        };
        let bytes = record.encode();
        assert_eq!(
            &bytes[..8],
            &7u64.to_be_bytes(),
            "the id first, as it was alone before"
        );
        assert_eq!(SentRecord::decode(&bytes), Some(record));
        assert_eq!(SentRecord::decode(&bytes[..37]), None);
        assert_eq!(SentRecord::decode(&7u64.to_be_bytes()), None);
        let of_campaign = SentRecord {
            campaign: 42,
            ..record
        };
        let bytes = of_campaign.encode();
        assert_eq!(bytes.len(), CAMPAIGN_LEN);
        assert_eq!(SentRecord::decode(&bytes), Some(of_campaign));
    }
}
