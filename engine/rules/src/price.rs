//! Prices from the profile's rate card, and the ledger they are recorded in.

use crate::clock::{Secs, COMPACT_EPOCH_UNIX_SECS, SECS_PER_DAY};
use crate::hash::MixHashMap;
use crate::ids::{Msisdn, PhoneNumberId};
use crate::template::model::Category;
use crate::volume::{tiered_rate, validate_tiers, MarketId, VolumeTier};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Market {
    pub name: String,
    /// Country calling code prefixes; `""` matches everything (the fallback market).
    pub prefixes: Vec<String>,
    pub marketing_micros: u64,
    pub utility_micros: u64,
    pub authentication_micros: u64,
    /// Meta's monthly volume tiers: lower utility rates past a tier's first message.
    #[serde(default)]
    pub utility_tiers: Vec<VolumeTier>,
    #[serde(default)]
    pub authentication_tiers: Vec<VolumeTier>,
}

impl Market {
    fn rate(&self, category: Category) -> u64 {
        match category {
            Category::Marketing => self.marketing_micros,
            // Service beyond a monthly allowance: at the utility rate.
            Category::Utility | Category::Service => self.utility_micros,
            Category::Authentication => self.authentication_micros,
        }
    }

    fn tiers(&self, category: Category) -> &[VolumeTier] {
        match category {
            Category::Utility => &self.utility_tiers,
            Category::Authentication => &self.authentication_tiers,
            Category::Marketing | Category::Service => &[],
        }
    }
}

/// What one accepted message costs, and the market it is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub micros: u64,
    pub market: MarketId,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum PricingSpec {
    /// One price for every business-initiated message; everything in the window is free.
    Flat { business_initiated_micros: u64 },
    /// Per template message by category and recipient country.
    PerCategory {
        utility_in_window_free: bool,
        /// Service messages are free when absent; when set, free for each business number's
        /// first this many of a calendar month, then priced at the market's utility rate.
        #[serde(default)]
        service_free_per_number_month: Option<u32>,
        markets: Vec<Market>,
    },
}

impl PricingSpec {
    /// What a card must hold: a fallback market for per-category prices, and rising tiers.
    pub fn validate(&self) -> Result<(), String> {
        if let PricingSpec::PerCategory { markets, .. } = self {
            if !markets
                .iter()
                .any(|m| m.prefixes.iter().any(String::is_empty))
            {
                return Err("per-category pricing needs a fallback market (prefix \"\")".into());
            }
            for market in markets {
                validate_tiers(&market.name, &market.utility_tiers)?;
                validate_tiers(&market.name, &market.authentication_tiers)?;
            }
        }
        Ok(())
    }
}

/// The rate card, with markets indexed by calling-code prefix, longest first.
#[derive(Debug, Clone)]
pub struct RateCard {
    spec: PricingSpec,
    /// (prefix digit count, prefix value, market index)
    prefixes: Vec<(u32, u64, usize)>,
    /// Each market's id among the profile's markets (`names`, interned across its cards).
    ids: Vec<MarketId>,
}

impl RateCard {
    /// The card of `spec`, its markets interned in `names` (index 0 is [`MarketId::NONE`]'s).
    pub fn new(spec: &PricingSpec, names: &mut Vec<String>) -> RateCard {
        if names.is_empty() {
            names.push(String::new());
        }
        let mut prefixes = Vec::new();
        let mut ids = Vec::new();
        if let PricingSpec::PerCategory { markets, .. } = spec {
            for (index, market) in markets.iter().enumerate() {
                for prefix in &market.prefixes {
                    let value = prefix.parse::<u64>().unwrap_or(0);
                    prefixes.push((prefix.len() as u32, value, index));
                }
                let id = match names.iter().position(|name| *name == market.name) {
                    Some(known) => known,
                    None => {
                        names.push(market.name.clone());
                        names.len() - 1
                    }
                };
                ids.push(MarketId(u16::try_from(id).unwrap_or(u16::MAX)));
            }
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0));
        RateCard {
            spec: spec.clone(),
            prefixes,
            ids,
        }
    }

    /// What one accepted message costs, counting it where the card needs a count: `service`
    /// counts the number's service messages of the month (asked only of a card that charges
    /// service beyond a monthly allowance), `volume` the portfolio's messages of the category
    /// to the market this month (asked for utility and authentication). A message inside a
    /// free entry point window is counted but free.
    #[inline]
    pub fn quote(
        &self,
        category: Category,
        business_initiated: bool,
        free_entry: bool,
        to: Msisdn,
        service: impl FnOnce() -> u32,
        volume: impl FnOnce(MarketId) -> u32,
    ) -> Quote {
        match &self.spec {
            PricingSpec::Flat {
                business_initiated_micros,
            } => Quote {
                micros: if business_initiated && !free_entry {
                    *business_initiated_micros
                } else {
                    0
                },
                market: MarketId::NONE,
            },
            PricingSpec::PerCategory {
                utility_in_window_free,
                service_free_per_number_month,
                markets,
            } => {
                let index = self.market_of(to);
                let (market, id) = (&markets[index], self.ids[index]);
                // Counted only where the month's volume changes the price: one shared atomic
                // less for every market without tiers.
                let tiered = !market.tiers(category).is_empty();
                let volume = || if tiered { volume(id) } else { 0 };
                let (free, count) = match category {
                    Category::Service => (
                        service_free_per_number_month.is_none_or(|free| service() <= free),
                        0,
                    ),
                    Category::Utility => (*utility_in_window_free && !business_initiated, volume()),
                    Category::Authentication => (false, volume()),
                    Category::Marketing => (false, 0),
                };
                let micros = if free || free_entry {
                    0
                } else {
                    tiered_rate(market.rate(category), market.tiers(category), count)
                };
                Quote { micros, market: id }
            }
        }
    }

    /// The price of one message Meta said it charged, `category` to `to`, whatever window or
    /// allowance would have made it free; a service message at the utility rate, a utility or
    /// authentication one at the tier `volume` (its count in the month) reached.
    pub fn rate(
        &self,
        category: Category,
        to: Msisdn,
        volume: impl FnOnce(MarketId) -> u32,
    ) -> u64 {
        match &self.spec {
            PricingSpec::Flat {
                business_initiated_micros,
            } => *business_initiated_micros,
            PricingSpec::PerCategory { markets, .. } => {
                let index = self.market_of(to);
                let market = &markets[index];
                let tiers = market.tiers(category);
                let count = if tiers.is_empty() {
                    0
                } else {
                    volume(self.ids[index])
                };
                tiered_rate(market.rate(category), tiers, count)
            }
        }
    }

    /// The market `to` is priced in.
    pub fn market(&self, to: Msisdn) -> MarketId {
        match &self.spec {
            PricingSpec::Flat { .. } => MarketId::NONE,
            PricingSpec::PerCategory { .. } => self.ids[self.market_of(to)],
        }
    }

    fn market_of(&self, to: Msisdn) -> usize {
        let digits = to.digits();
        let length = digits.ilog10() + 1;
        for (prefix_length, value, market) in &self.prefixes {
            if *prefix_length == 0 {
                return *market;
            }
            if *prefix_length <= length && digits / 10u64.pow(length - prefix_length) == *value {
                return *market;
            }
        }
        0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerKey {
    pub number: PhoneNumberId,
    pub category: Category,
    /// Days since the Unix epoch (UTC).
    pub day: u32,
    /// The recipient's market on the card that priced it.
    pub market: MarketId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerTotals {
    pub messages: u64,
    pub micros: u64,
}

impl std::hash::Hash for LedgerKey {
    /// Two words: the number, and the day, category and market packed (a row is found on every
    /// accepted message).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.number.0);
        state.write_u64(
            u64::from(self.day)
                | u64::from(self.category as u8) << 32
                | u64::from(self.market.0) << 40,
        );
    }
}

/// Accepted messages and their cost, summed per number, category, day and market.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    rows: MixHashMap<LedgerKey, LedgerTotals>,
}

pub fn unix_day(at: Secs) -> u32 {
    ((u64::from(at) + COMPACT_EPOCH_UNIX_SECS) / u64::from(SECS_PER_DAY)) as u32
}

impl Ledger {
    #[inline]
    pub fn record(&mut self, number: PhoneNumberId, category: Category, at: Secs, quote: Quote) {
        let totals = self
            .rows
            .entry(LedgerKey {
                number,
                category,
                day: unix_day(at),
                market: quote.market,
            })
            .or_default();
        totals.messages += 1;
        totals.micros += quote.micros;
    }

    /// Takes back a message recorded by [`Ledger::record`] that Meta will not charge (it was
    /// refused or never delivered). Never below zero: a ledger since start may not hold it.
    pub fn reverse(&mut self, number: PhoneNumberId, category: Category, at: Secs, quote: Quote) {
        let key = LedgerKey {
            number,
            category,
            day: unix_day(at),
            market: quote.market,
        };
        if let Some(totals) = self.rows.get_mut(&key) {
            totals.messages = totals.messages.saturating_sub(1);
            totals.micros = totals.micros.saturating_sub(quote.micros);
        }
    }

    /// Adds `totals` to the row `key`.
    pub fn add_row(&mut self, key: LedgerKey, totals: LedgerTotals) {
        let row = self.rows.entry(key).or_default();
        row.messages += totals.messages;
        row.micros += totals.micros;
    }

    /// Adds another ledger's rows into this one (shards into a whole).
    pub fn merge(&mut self, other: &Ledger) {
        for (key, totals) in &other.rows {
            let mine = self.rows.entry(*key).or_default();
            mine.messages += totals.messages;
            mine.micros += totals.micros;
        }
    }

    /// Every row, sorted by number, day and category.
    pub fn rows(&self) -> Vec<(LedgerKey, LedgerTotals)> {
        let mut rows: Vec<_> = self.rows.iter().map(|(k, t)| (*k, *t)).collect();
        rows.sort_by_key(|(k, _)| (k.number, k.day, k.category, k.market));
        rows
    }

    /// Totals over the rows that match the filters (`None` matches all).
    pub fn sum(
        &self,
        number: Option<PhoneNumberId>,
        category: Option<Category>,
        day: Option<u32>,
    ) -> LedgerTotals {
        let mut sum = LedgerTotals::default();
        for (key, totals) in &self.rows {
            if number.is_none_or(|n| n == key.number)
                && category.is_none_or(|c| c == key.category)
                && day.is_none_or(|d| d == key.day)
            {
                sum.messages += totals.messages;
                sum.micros += totals.micros;
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_sums_by_number_category_and_day() {
        let mut ledger = Ledger::default();
        let day0 = 2_000 * SECS_PER_DAY;
        let quote = |micros| Quote {
            micros,
            market: MarketId(1),
        };
        ledger.record(PhoneNumberId(1), Category::Marketing, day0, quote(50_000));
        ledger.record(
            PhoneNumberId(1),
            Category::Marketing,
            day0 + 10,
            quote(50_000),
        );
        ledger.record(
            PhoneNumberId(1),
            Category::Utility,
            day0 + SECS_PER_DAY,
            quote(0),
        );
        let mut other = Ledger::default();
        other.record(PhoneNumberId(2), Category::Marketing, day0, quote(25_000));
        ledger.merge(&other);
        let marketing = ledger.sum(None, Some(Category::Marketing), Some(unix_day(day0)));
        assert_eq!(
            marketing,
            LedgerTotals {
                messages: 3,
                micros: 125_000
            }
        );
        assert_eq!(ledger.sum(Some(PhoneNumberId(1)), None, None).messages, 3);
        assert_eq!(ledger.rows().len(), 3);
    }
}
