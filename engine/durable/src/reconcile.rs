//! What Meta charged, beside what wagate estimated. Each message's pricing comes once in its
//! status webhooks (`pricing`: billable, type, category); wagate prices it with the rate card
//! in effect when it was sent, for Meta's category and the recipient's market, and adds it to
//! the reconciled ledger rows (`reconciled_ledger_key`) of its number, day and category. A
//! charge is recorded under `charge:<wamid>` (with an expiry, like the parked statuses), so a
//! repeated webhook charges nothing more; a message whose delivery then fails has its charge
//! taken back (Meta charges no undelivered message).

use wagate_cloud_api::webhooks::events::StatusPricing;
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::price::unix_day;
use wagate_rules::rate_cards::RateCards;
use wagate_rules::template::model::Category;
use wagate_store::keys::{idempotency_key, reconciled_ledger_key};
use wagate_store::{Batch, Family};

use super::sent_record::SentRecord;

pub(crate) const CHARGES: Family = Family::Idempotency;

pub(crate) fn charge_key(wamid: &str) -> Vec<u8> {
    idempotency_key(0, &format!("charge:{wamid}"))
}

/// Meta's charge for a message not settled yet (its status came before Meta's answer to the
/// send), booked when it is.
pub(crate) fn early_charge_key(wamid: &str) -> Vec<u8> {
    idempotency_key(0, &format!("early-charge:{wamid}"))
}

/// Meta's charge for one message, as reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    pub number: u64,
    pub day: u32,
    pub category: Category,
    pub micros: u64,
}

impl Charge {
    /// Meta's word on a sent message: its category, and whether it is charged.
    pub(crate) fn of(record: &SentRecord, pricing: &StatusPricing, cards: &RateCards) -> Charge {
        let category = meta_category(&pricing.category);
        let sent = record.send_at;
        let micros = if pricing.billable {
            cards.at(sent.secs()).rate(category, record.to)
        } else {
            0
        };
        Charge {
            number: record.number.0,
            day: unix_day(sent.secs()),
            category,
            micros,
        }
    }

    /// Meta's word on a message not settled yet, priced from the status itself: its number,
    /// its recipient, and the status's time for the send's.
    pub(crate) fn early(
        number: PhoneNumberId,
        to: Msisdn,
        at: Timestamp,
        pricing: &StatusPricing,
        cards: &RateCards,
    ) -> Charge {
        let category = meta_category(&pricing.category);
        let micros = if pricing.billable {
            cards.at(at.secs()).rate(category, to)
        } else {
            0
        };
        Charge {
            number: number.0,
            day: unix_day(at.secs()),
            category,
            micros,
        }
    }

    /// Adds this charge (`sign` 1) or takes it back (`sign` -1) in the reconciled rows.
    pub(crate) fn book(&self, batch: &mut Batch, sign: i64) {
        let (messages, micros) = if sign >= 0 {
            (1u64, self.micros)
        } else {
            (0u64.wrapping_sub(1), 0u64.wrapping_sub(self.micros))
        };
        batch.add(
            Family::Ledger,
            reconciled_ledger_key(self.number, self.day, self.category as u8),
            messages,
            micros,
        );
    }

    /// `[expiry u64 BE][number u64][day u32][category u8][micros u64]`.
    pub(crate) fn encode(&self, expires_at: u64) -> [u8; 29] {
        let mut out = [0u8; 29];
        out[..8].copy_from_slice(&expires_at.to_be_bytes());
        out[8..16].copy_from_slice(&self.number.to_be_bytes());
        out[16..20].copy_from_slice(&self.day.to_be_bytes());
        out[20] = self.category as u8;
        out[21..].copy_from_slice(&self.micros.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Charge> {
        let bytes: &[u8; 29] = bytes.try_into().ok()?;
        Some(Charge {
            number: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
            day: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            category: *Category::ALL.get(usize::from(bytes[20]))?,
            micros: u64::from_be_bytes(bytes[21..].try_into().ok()?),
        })
    }
}

/// Meta's pricing category as wagate's (group and lite variants priced as their kind; a
/// referral conversion is free in any case).
fn meta_category(category: &str) -> Category {
    match category {
        "marketing" | "marketing_lite" | "group_marketing" => Category::Marketing,
        "utility" | "group_utility" => Category::Utility,
        "authentication" | "authentication-international" | "authentication_international" => {
            Category::Authentication
        }
        _ => Category::Service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Delivery;

    #[test]
    fn meta_s_pricing_is_priced_by_the_card_of_the_send_and_round_trips() {
        let cards = RateCards::embedded("whatsapp-2025").expect("cards");
        let record = SentRecord {
            id: 1,
            delivery: Delivery::Sent,
            error: 0,
            business_initiated: true,
            number: PhoneNumberId(7),
            to: Msisdn::from_digits(5_511_999_990_000).expect("msisdn"),
            send_at: Timestamp::from_unix_secs(1_767_225_600),
        };
        let pricing = |billable: bool, category: &str| StatusPricing {
            billable,
            kind: if billable {
                "regular"
            } else {
                "free_customer_service"
            }
            .into(),
            category: category.into(),
        };
        let charged = Charge::of(&record, &pricing(true, "marketing"), &cards);
        assert_eq!(
            (charged.category, charged.micros),
            (Category::Marketing, 62_500)
        );
        assert_eq!(
            Charge::of(&record, &pricing(true, "utility"), &cards).micros,
            6_800
        );
        assert_eq!(
            Charge::of(&record, &pricing(false, "service"), &cards).micros,
            0
        );
        assert_eq!(Charge::decode(&charged.encode(9)), Some(charged));
    }
}
