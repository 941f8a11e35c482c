//! Rate cards as data: one file per profile and effective date (`rate_cards/*.toml`, embedded;
//! an operator's directory replaces them, `[pricing] rate_cards_dir`), each Meta's prices from
//! that day on. The card in effect at a message's acceptance prices it, so a profile's pricing
//! changes on its date (per-message pricing from 2025-07-01; service and in-window utility
//! charged from 2026-10-01) with no restart and no change of code.

use std::sync::Arc;

use serde::Deserialize;

use crate::clock::{days_of_date, Secs, COMPACT_EPOCH_UNIX_SECS, SECS_PER_DAY};
use crate::ids::Msisdn;
use crate::price::{PricingSpec, RateCard};
use crate::volume::MarketId;

/// The embedded cards: (file name, text).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "whatsapp-2021-2021-01-01.toml",
        include_str!("../rate_cards/whatsapp-2021-2021-01-01.toml"),
    ),
    (
        "whatsapp-2025-2025-07-01.toml",
        include_str!("../rate_cards/whatsapp-2025-2025-07-01.toml"),
    ),
    (
        "whatsapp-2025-2026-10-01.toml",
        include_str!("../rate_cards/whatsapp-2025-2026-10-01.toml"),
    ),
];

/// A rate card that cannot be used, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RateCardError(String);

/// One rate card file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    /// The profile it prices.
    profile: String,
    /// `YYYY-MM-DD` (UTC): it prices messages accepted from that day on.
    effective_from: String,
    pricing: PricingSpec,
}

/// A profile's cards, by effective time (earliest first; the earliest also prices anything
/// before its day). Cheap to clone: the writers of ledger rows each hold one.
#[derive(Debug, Clone)]
pub struct RateCards {
    cards: Arc<[(Secs, RateCard)]>,
    /// The markets of all its cards by [`MarketId`] (index 0, `""`, is `MarketId::NONE`).
    markets: Arc<[String]>,
}

impl RateCards {
    /// The embedded cards of `profile`.
    pub fn embedded(profile: &str) -> Result<RateCards, RateCardError> {
        RateCards::parse(profile, EMBEDDED.iter().copied())
    }

    /// The cards of `profile` among `files` ((name, text) pairs); the others are skipped.
    pub fn parse<'a>(
        profile: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RateCards, RateCardError> {
        let mut cards = Vec::new();
        let mut markets = Vec::new();
        for (name, text) in files {
            let invalid = |why: String| RateCardError(format!("rate card {name}: {why}"));
            let file: CardFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
            if file.profile != profile {
                continue;
            }
            let days = days_of_date(&file.effective_from).ok_or_else(|| {
                invalid(format!(
                    "effective_from '{}' is not a YYYY-MM-DD date",
                    file.effective_from
                ))
            })?;
            file.pricing.validate().map_err(invalid)?;
            let unix = days * u64::from(SECS_PER_DAY);
            let from = Secs::try_from(unix.saturating_sub(COMPACT_EPOCH_UNIX_SECS))
                .map_err(|_| invalid("effective_from is too late".into()))?;
            if cards.iter().any(|(at, _)| *at == from) {
                return Err(invalid(format!(
                    "another card of {profile} takes effect on {}",
                    file.effective_from
                )));
            }
            cards.push((from, RateCard::new(&file.pricing, &mut markets)));
        }
        if cards.is_empty() {
            return Err(RateCardError(format!(
                "no rate card prices profile {profile}"
            )));
        }
        cards.sort_by_key(|(at, _)| *at);
        Ok(RateCards {
            cards: cards.into(),
            markets: markets.into(),
        })
    }

    /// A single card for all time (a profile file that carries its own `[pricing]`).
    pub fn single(spec: &PricingSpec) -> RateCards {
        let mut markets = Vec::new();
        let card = RateCard::new(spec, &mut markets);
        RateCards {
            cards: vec![(0, card)].into(),
            markets: markets.into(),
        }
    }

    /// How many markets its cards name (with `MarketId::NONE`): the size of a volume count.
    pub fn market_count(&self) -> usize {
        self.markets.len()
    }

    /// A market's name (`""` for `MarketId::NONE` and ids no card names).
    pub fn market_name(&self, market: MarketId) -> &str {
        self.markets
            .get(usize::from(market.0))
            .map_or("", String::as_str)
    }

    /// The market called `name` (as Meta's webhooks name regions: case aside).
    pub fn market_named(&self, name: &str) -> Option<MarketId> {
        self.markets
            .iter()
            .position(|known| !known.is_empty() && known.eq_ignore_ascii_case(name))
            .map(|index| MarketId(index as u16))
    }

    /// The market a message to `to` accepted at `at` was priced in.
    pub fn market_at(&self, at: Secs, to: Msisdn) -> MarketId {
        self.at(at).market(to)
    }

    /// The card in effect at `at`.
    #[inline]
    pub fn at(&self, at: Secs) -> &RateCard {
        let index = self.cards.partition_point(|(from, _)| *from <= at);
        &self.cards[index.saturating_sub(1)].1
    }

    /// When each card takes effect (compact seconds), earliest first.
    pub fn effective_times(&self) -> Vec<Secs> {
        self.cards.iter().map(|(at, _)| *at).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::ids::Msisdn;
    use crate::template::model::Category;

    fn at(date: &str) -> Secs {
        let days = days_of_date(date).expect("date");
        Timestamp::from_unix_secs(days * 86_400).secs()
    }

    #[test]
    fn the_card_in_effect_prices_and_2026_10_01_charges_what_was_free() {
        let cards = RateCards::embedded("whatsapp-2025").expect("cards");
        let us = Msisdn::from_digits(16_505_551_234).expect("msisdn");
        let (before, after) = (cards.at(at("2026-09-30")), cards.at(at("2026-10-01")));
        // A utility template in the window: free, then at the utility rate.
        assert_eq!(price(before, Category::Utility, false, us, 1), 0);
        assert_eq!(price(after, Category::Utility, false, us, 1), 3_400);
        // Service: free, then free for the number's first 1,000 of the month only.
        assert_eq!(price(before, Category::Service, false, us, 5_000), 0);
        assert_eq!(price(after, Category::Service, false, us, 1_000), 0);
        assert_eq!(price(after, Category::Service, false, us, 1_001), 3_400);
        // Marketing is what it was; before the earliest card, the earliest prices.
        assert_eq!(price(after, Category::Marketing, true, us, 1), 25_000);
        assert_eq!(price(cards.at(0), Category::Marketing, true, us, 1), 25_000);
        assert!(RateCards::embedded("whatsapp-2021").is_ok());
        assert!(RateCards::embedded("nobody").is_err());
    }

    #[test]
    fn flat_card_charges_only_business_initiated() {
        let card = RateCards::embedded("whatsapp-2021").unwrap().at(0).clone();
        assert_eq!(
            price(&card, Category::Marketing, true, to(16_505_551_234), 1),
            50_000
        );
        assert_eq!(
            price(&card, Category::Utility, true, to(5_511_999_990_000), 1),
            50_000
        );
        assert_eq!(
            price(&card, Category::Marketing, false, to(16_505_551_234), 1),
            0
        );
        assert_eq!(
            price(&card, Category::Service, false, to(16_505_551_234), 1),
            0
        );
    }

    #[test]
    fn per_category_card_prices_by_country_and_category() {
        // The card of 2025-07-01 (the earliest of the profile).
        let card = RateCards::embedded("whatsapp-2025").unwrap().at(0).clone();
        assert_eq!(
            price(&card, Category::Marketing, true, to(5_511_999_990_000), 1),
            62_500
        );
        assert_eq!(
            price(&card, Category::Utility, true, to(5_511_999_990_000), 1),
            6_800
        );
        // Utility inside the window is free; marketing never is.
        assert_eq!(
            price(&card, Category::Utility, false, to(5_511_999_990_000), 1),
            0
        );
        assert_eq!(
            price(&card, Category::Marketing, false, to(16_505_551_234), 1),
            25_000
        );
        assert_eq!(
            price(&card, Category::Service, false, to(16_505_551_234), 1),
            0
        );
        // Longest prefix wins: 212 (Morocco, Rest of Africa) over nothing; 44 falls back.
        assert_eq!(
            price(
                &card,
                Category::Authentication,
                true,
                to(212_612_345_678),
                1
            ),
            4_000
        );
        assert_eq!(
            price(&card, Category::Marketing, true, to(447_911_123_456), 1),
            60_400
        );
    }

    fn to(digits: u64) -> Msisdn {
        Msisdn::from_digits(digits).unwrap()
    }

    /// The price of a message outside any free entry window, `service` being its number's
    /// service count and every tiered count 1.
    fn price(card: &RateCard, category: Category, business: bool, to: Msisdn, service: u32) -> u64 {
        card.quote(category, business, false, to, || service, |_| 1)
            .micros
    }

    #[test]
    fn volume_tiers_lower_utility_and_authentication_by_the_month_s_count() {
        let cards = RateCards::embedded("whatsapp-2025").expect("cards");
        let card = cards.at(at("2026-10-01"));
        let india = to(919_812_345_678);
        let market = cards.market_named("india").expect("India is a market");
        assert_eq!(cards.market_name(market), "India");
        assert_eq!(card.market(india), market);
        let quote = |category, count: u32| {
            card.quote(
                category,
                true,
                false,
                india,
                || 1,
                |m| {
                    assert_eq!(m, market);
                    count
                },
            )
        };
        assert_eq!(quote(Category::Utility, 1).micros, 1_400);
        assert_eq!(quote(Category::Utility, 25_000_001).micros, 1_330);
        assert_eq!(quote(Category::Authentication, 75_000_001).micros, 1_190);
        // Marketing has no tiers; a free entry window makes it free but it keeps its market.
        assert_eq!(quote(Category::Marketing, 75_000_001).micros, 10_700);
        let free = card.quote(Category::Marketing, true, true, india, || 1, |_| 1);
        assert_eq!((free.micros, free.market), (0, market));
        // Meta's charge is priced at the tier the month reached.
        assert_eq!(card.rate(Category::Utility, india, |_| 30_000_000), 1_330);
        // The same name is the same market on every card of the profile.
        assert_eq!(cards.at(at("2025-08-01")).market(india), market);
        assert_eq!(
            RateCards::embedded("whatsapp-2021")
                .unwrap()
                .market_at(0, india),
            MarketId::NONE
        );
    }

    #[test]
    fn a_bad_card_is_refused_with_its_name() {
        let bad = r#"profile = "p"
effective_from = "2026-02-30x"
[pricing]
model = "flat"
business_initiated_micros = 1
"#;
        let error = RateCards::parse("p", [("bad.toml", bad)]).expect_err("bad date");
        assert!(error.to_string().contains("bad.toml"), "{error}");
    }
}
