//! Meta's monthly volume tiers for utility and authentication messages: the lower rates a
//! business portfolio earns in a market once its messages of the calendar month (UTC) pass a
//! tier's first count, and the counts that place each message in its tier.
//!
//! The count is wagate's projection: every accepted message of the category to a market with
//! tiers, as the ledger counts them (so a restart seeds it from the ledger's rows of the
//! month; markets without tiers are not counted, their count changes no price). Meta's
//! `VOLUME_BASED_PRICING_TIER_UPDATE` is the fact: it moves the count into the tier Meta named,
//! and wagate counts on from there.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::template::model::Category;

/// Where a market sits in a profile's rate cards (their markets' names, interned): the same
/// name is the same market on every card of the profile. `MarketId::NONE` is the market of a
/// card with no markets (flat pricing) and of ledger rows written before markets were kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MarketId(pub u16);

impl MarketId {
    pub const NONE: MarketId = MarketId(0);
}

/// One volume tier of a market and category: from the `from`-th message of the month on, each
/// costs `micros`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeTier {
    pub from: u32,
    pub micros: u64,
}

/// The rate of the `count`-th message of the month: the last tier it has reached, or `base`.
#[inline]
pub fn tiered_rate(base: u64, tiers: &[VolumeTier], count: u32) -> u64 {
    tiers
        .iter()
        .rev()
        .find(|tier| count >= tier.from)
        .map_or(base, |tier| tier.micros)
}

/// Checks a market's tiers: rising first counts, each past the first message.
pub fn validate_tiers(market: &str, tiers: &[VolumeTier]) -> Result<(), String> {
    let mut previous = 1;
    for tier in tiers {
        if tier.from <= previous {
            return Err(format!(
                "market {market}: volume tiers must start past message 1 and rise ({} after {previous})",
                tier.from
            ));
        }
        previous = tier.from;
    }
    Ok(())
}

/// A count of a calendar month: the month in the high 32 bits and the count in the low, so a
/// new month starts from zero without a sweep. Lock-free.
#[derive(Debug, Default)]
pub struct MonthCount(AtomicU64);

impl MonthCount {
    /// Adds `messages` in `month`; the count after.
    #[inline]
    pub fn add(&self, month: u32, messages: u32) -> u32 {
        self.update(month, |seen| seen.saturating_add(messages))
    }

    /// The count of `month` so far.
    pub fn current(&self, month: u32) -> u32 {
        let packed = self.0.load(Ordering::Relaxed);
        if (packed >> 32) as u32 == month {
            packed as u32
        } else {
            0
        }
    }

    /// Sets `month`'s count to `next` of it; the count after.
    pub fn update(&self, month: u32, next: impl Fn(u32) -> u32) -> u32 {
        let mut count = 0;
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let seen = if (packed >> 32) as u32 == month {
                    packed as u32
                } else {
                    0
                };
                count = next(seen);
                Some((u64::from(month) << 32) | u64::from(count))
            });
        count
    }
}

/// A portfolio's utility and authentication messages of the month, per market: one
/// [`MonthCount`] per (market, category), shared by every shard.
#[derive(Debug)]
pub struct VolumeCounts {
    slots: Box<[MonthCount]>,
}

impl VolumeCounts {
    /// Counts for `markets` markets (a profile's interned market count).
    pub fn new(markets: usize) -> VolumeCounts {
        VolumeCounts {
            slots: (0..markets * 2).map(|_| MonthCount::default()).collect(),
        }
    }

    fn slot(&self, market: MarketId, category: Category) -> Option<&MonthCount> {
        let column = match category {
            Category::Utility => 0,
            Category::Authentication => 1,
            Category::Marketing | Category::Service => return None,
        };
        self.slots.get(usize::from(market.0) * 2 + column)
    }

    /// Counts one more message in `month`; which of the month it is (1 for the first). 0 for a
    /// category without volume tiers.
    #[inline]
    pub fn count(&self, market: MarketId, category: Category, month: u32) -> u32 {
        self.update(market, category, month, |seen| seen.saturating_add(1))
    }

    /// Adds `messages` counted before a restart (the ledger's rows of the month).
    pub fn seed(&self, market: MarketId, category: Category, month: u32, messages: u32) {
        self.update(market, category, month, |seen| {
            seen.saturating_add(messages)
        });
    }

    /// Meta's word: in `month` the portfolio is in the tier of messages `from..=to` (`to`
    /// absent for the top tier). The count moves into it; the next message is counted on from
    /// there.
    pub fn meet_meta_tier(
        &self,
        market: MarketId,
        category: Category,
        month: u32,
        from: u32,
        to: Option<u32>,
    ) {
        self.update(market, category, month, |seen| {
            let floor = from.saturating_sub(1);
            let ceiling = to.map_or(u32::MAX, |to| to.saturating_sub(1)).max(floor);
            seen.clamp(floor, ceiling)
        });
    }

    /// The messages counted in `month` so far.
    pub fn current(&self, market: MarketId, category: Category, month: u32) -> u32 {
        self.slot(market, category)
            .map_or(0, |slot| slot.current(month))
    }

    fn update(
        &self,
        market: MarketId,
        category: Category,
        month: u32,
        next: impl Fn(u32) -> u32,
    ) -> u32 {
        self.slot(market, category)
            .map_or(0, |slot| slot.update(month, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_s_count_places_each_message_in_its_tier_and_meta_s_tier_moves_it() {
        let tiers = [
            VolumeTier {
                from: 3,
                micros: 90,
            },
            VolumeTier {
                from: 5,
                micros: 80,
            },
        ];
        let counts = VolumeCounts::new(2);
        let market = MarketId(1);
        let rates: Vec<u64> = (0..6)
            .map(|_| tiered_rate(100, &tiers, counts.count(market, Category::Utility, 7)))
            .collect();
        assert_eq!(rates, [100, 100, 90, 90, 80, 80]);
        // Another category, market and month count apart; marketing has no tiers.
        assert_eq!(counts.count(market, Category::Authentication, 7), 1);
        assert_eq!(counts.count(MarketId(0), Category::Utility, 7), 1);
        assert_eq!(counts.count(market, Category::Utility, 8), 1);
        assert_eq!(counts.count(market, Category::Marketing, 8), 0);
        // Meta says month 9 is in the tier of messages 5 and up: the next is the 5th.
        counts.meet_meta_tier(market, Category::Utility, 9, 5, None);
        assert_eq!(counts.count(market, Category::Utility, 9), 5);
        // ...and a tier below what wagate counted: Meta's word wins.
        counts.meet_meta_tier(market, Category::Utility, 9, 3, Some(4));
        assert_eq!(counts.current(market, Category::Utility, 9), 3);
        counts.seed(market, Category::Utility, 9, 10);
        assert_eq!(counts.current(market, Category::Utility, 9), 13);
        assert!(validate_tiers("m", &tiers).is_ok());
        assert!(validate_tiers("m", &[tiers[1], tiers[0]]).is_err());
    }
}
