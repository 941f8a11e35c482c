//! What Meta charged, beside what wagate estimated. Each message's pricing comes once in its
//! status webhooks (`pricing`: billable, type, category); wagate prices it with the rate card
//! in effect when it was sent, for Meta's category and the recipient's market (at the volume
//! tier the portfolio's month has reached), and adds it to the reconciled ledger rows
//! (`ledger_key`, side `R`) of its number, day, category and market. A
//! charge is recorded under `charge:<wamid>` (with an expiry, like the parked statuses), so a
//! repeated webhook charges nothing more; a message whose delivery then fails has its charge
//! taken back (Meta charges no undelivered message).

use wagate_cloud_api::webhooks::events::StatusPricing;
use wagate_rules::clock::month_of;
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::price::unix_day;
use wagate_rules::rate_cards::RateCards;
use wagate_rules::template::model::Category;
use wagate_rules::volume::{MarketId, VolumeCounts};
use wagate_store::keys::{idempotency_key, ledger_key, LedgerRowKey, LedgerSide};
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
    pub market: MarketId,
    pub micros: u64,
}

impl Charge {
    /// Meta's word on a sent message: its category, and whether it is charged (at the tier
    /// `volume`, its portfolio's counts, has reached in the month of the send).
    pub(crate) fn of(
        record: &SentRecord,
        pricing: &StatusPricing,
        cards: &RateCards,
        volume: Option<&VolumeCounts>,
    ) -> Charge {
        Charge::priced(
            record.number,
            record.to,
            record.send_at,
            pricing,
            cards,
            volume,
        )
    }

    fn priced(
        number: PhoneNumberId,
        to: Msisdn,
        sent: Timestamp,
        pricing: &StatusPricing,
        cards: &RateCards,
        volume: Option<&VolumeCounts>,
    ) -> Charge {
        let category = meta_category(&pricing.category);
        let card = cards.at(sent.secs());
        let month = month_of(sent.unix_secs());
        let micros = if pricing.billable {
            card.rate(category, to, |market| {
                volume.map_or(0, |counts| counts.current(market, category, month))
            })
        } else {
            0
        };
        Charge {
            number: number.0,
            day: unix_day(sent.secs()),
            category,
            market: card.market(to),
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
        volume: Option<&VolumeCounts>,
    ) -> Charge {
        Charge::priced(number, to, at, pricing, cards, volume)
    }

    /// Adds this charge (`sign` 1) or takes it back (`sign` -1) in the reconciled rows, its
    /// market by name on `cards`.
    pub(crate) fn book(&self, batch: &mut Batch, sign: i64, cards: &RateCards) {
        let (messages, micros) = if sign >= 0 {
            (1u64, self.micros)
        } else {
            (0u64.wrapping_sub(1), 0u64.wrapping_sub(self.micros))
        };
        let row = LedgerRowKey {
            number: self.number,
            day: self.day,
            category: self.category as u8,
            side: LedgerSide::Reconciled,
            market: cards.market_name(self.market),
        };
        batch.add(Family::Ledger, ledger_key(&row), messages, micros);
    }

    /// `[expiry u64 BE][number u64][day u32][category u8][micros u64][market u16]`; a record
    /// written before markets were kept (29 bytes) reads as market `NONE`.
    pub(crate) fn encode(&self, expires_at: u64) -> [u8; 31] {
        let mut out = [0u8; 31];
        out[..8].copy_from_slice(&expires_at.to_be_bytes());
        out[8..16].copy_from_slice(&self.number.to_be_bytes());
        out[16..20].copy_from_slice(&self.day.to_be_bytes());
        out[20] = self.category as u8;
        out[21..29].copy_from_slice(&self.micros.to_be_bytes());
        out[29..].copy_from_slice(&self.market.0.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Charge> {
        if bytes.len() != 29 && bytes.len() != 31 {
            return None;
        }
        let market = bytes.get(29..31).map_or(MarketId::NONE, |m| {
            MarketId(u16::from_be_bytes([m[0], m[1]]))
        });
        Some(Charge {
            number: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
            day: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            category: *Category::ALL.get(usize::from(bytes[20]))?,
            market,
            micros: u64::from_be_bytes(bytes[21..29].try_into().ok()?),
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
            campaign: 0,
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
        let charged = Charge::of(&record, &pricing(true, "marketing"), &cards, None);
        assert_eq!(
            (charged.category, charged.micros),
            (Category::Marketing, 62_500)
        );
        assert_eq!(
            Charge::of(&record, &pricing(true, "utility"), &cards, None).micros,
            6_800
        );
        assert_eq!(
            Charge::of(&record, &pricing(false, "service"), &cards, None).micros,
            0
        );
        assert_eq!(Charge::decode(&charged.encode(9)), Some(charged));
        assert_eq!(cards.market_name(charged.market), "Brazil");
        // Past Brazil's first utility tier this month, Meta's charge is at the tier's rate.
        let volume = VolumeCounts::new(cards.market_count());
        let month = month_of(record.send_at.unix_secs());
        volume.seed(charged.market, Category::Utility, month, 5_000_001);
        assert_eq!(
            Charge::of(&record, &pricing(true, "utility"), &cards, Some(&volume)).micros,
            6_460
        );
        // A record kept before markets were: read as no market.
        let old = &charged.encode(9)[..29];
        assert_eq!(Charge::decode(old).map(|c| c.market), Some(MarketId::NONE));
    }
}
