//! Meta's word on a portfolio's monthly volume tier (`account_update`
//! `VOLUME_BASED_PRICING_TIER_UPDATE`): applied to the portfolio's counts at once, and kept in
//! the registry family so that a restart applies it again over the ledger's seed.

use wagate_rules::clock::{days_of_date, month_of, Timestamp};
use wagate_rules::ids::PortfolioId;
use wagate_rules::registry::Registry;
use wagate_rules::template::model::Category;
use wagate_store::keys::{registry_kind, Reader, Writer};
use wagate_store::{Batch, Family, Store, StoreError};

use crate::family_scan::everything;

/// One tier Meta named: the portfolio's messages `from..=to` of `category` to `market` in
/// `month` (`year * 12 + month - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaVolumeTier {
    pub portfolio: PortfolioId,
    pub category: Category,
    pub market: String,
    pub month: u32,
    pub from: u32,
    pub to: Option<u32>,
}

impl MetaVolumeTier {
    /// Reads Meta's fields: `tier` `"25000001:50000000"` (or `"50000001:"` for the top
    /// tier), `pricing_category` `UTILITY`/`AUTHENTICATION`, `effective_month` `YYYY-MM`.
    /// `None` for what wagate does not price by volume or cannot read.
    pub(crate) fn read(
        portfolio: PortfolioId,
        category: &str,
        region: &str,
        tier: &str,
        effective_month: &str,
    ) -> Option<MetaVolumeTier> {
        let category = match category.to_ascii_lowercase().as_str() {
            "utility" => Category::Utility,
            "authentication" | "authentication_international" => Category::Authentication,
            _ => return None,
        };
        let (from, to) = tier.split_once(':').unwrap_or((tier, ""));
        let from = from.trim().parse().ok()?;
        let to = match to.trim() {
            "" => None,
            to => Some(to.parse().ok()?),
        };
        let days = days_of_date(&format!("{}-01", effective_month.get(..7)?))?;
        Some(MetaVolumeTier {
            portfolio,
            category,
            market: region.to_string(),
            month: month_of(days * 86_400),
            from,
            to,
        })
    }

    /// Moves the portfolio's count into this tier if it is of `now`'s month and names a
    /// market of the profile's cards; whether it did.
    pub(crate) fn apply(&self, registry: &Registry, now: Timestamp) -> bool {
        let Some(market) = registry.profile().rate_cards.market_named(&self.market) else {
            return false;
        };
        if self.month != month_of(now.unix_secs()) {
            return false;
        }
        registry.volume_of(self.portfolio).meet_meta_tier(
            market,
            self.category,
            self.month,
            self.from,
            self.to,
        );
        true
    }

    fn key(&self) -> Vec<u8> {
        let mut key = vec![registry_kind::VOLUME_TIER];
        key.extend_from_slice(&self.portfolio.0.to_be_bytes());
        key.push(self.category as u8);
        key.extend_from_slice(self.market.as_bytes());
        key
    }

    fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer
            .u32(self.month)
            .u32(self.from)
            .u32(self.to.unwrap_or(0));
        writer.bytes
    }

    fn decode(key: &[u8], value: &[u8]) -> Option<MetaVolumeTier> {
        let portfolio = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
        let category = *Category::ALL.get(usize::from(*key.get(9)?))?;
        let market = std::str::from_utf8(key.get(10..)?).ok()?.to_string();
        let mut reader = Reader::new(value);
        Some(MetaVolumeTier {
            portfolio: PortfolioId(portfolio),
            category,
            market,
            month: reader.u32()?,
            from: reader.u32()?,
            to: Some(reader.u32()?).filter(|&to| to != 0),
        })
    }

    /// Keeps it (the latest of its portfolio, category and market), synced.
    pub(crate) fn keep(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        batch.put(Family::Registry, self.key(), self.encode());
        store.write(&batch, true)
    }
}

/// Applies again the tiers Meta named for `now`'s month (after the ledger seeded the counts).
pub(crate) fn restore(
    store: &dyn Store,
    registry: &Registry,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tiers = Vec::new();
    everything(store, Family::Registry, |key, value| {
        if key.first() == Some(&registry_kind::VOLUME_TIER) {
            tiers.extend(MetaVolumeTier::decode(key, value));
        }
    })?;
    for tier in tiers {
        tier.apply(registry, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_s_tier_is_read_and_round_trips() {
        let tier = MetaVolumeTier::read(
            PortfolioId(4),
            "UTILITY",
            "India",
            "25000001:50000000",
            "2026-12",
        )
        .expect("read");
        assert_eq!((tier.from, tier.to), (25_000_001, Some(50_000_000)));
        assert_eq!(tier.month, 2026 * 12 + 11);
        assert_eq!(
            MetaVolumeTier::decode(&tier.key(), &tier.encode()),
            Some(tier)
        );
        let top = MetaVolumeTier::read(
            PortfolioId(4),
            "AUTHENTICATION",
            "India",
            "75000001:",
            "2026-12",
        );
        assert_eq!(top.map(|t| t.to), Some(None));
        assert!(
            MetaVolumeTier::read(PortfolioId(4), "MARKETING", "India", "1:2", "2026-12").is_none()
        );
        assert!(MetaVolumeTier::read(PortfolioId(4), "UTILITY", "India", "x", "2026-12").is_none());
        assert!(MetaVolumeTier::read(PortfolioId(4), "UTILITY", "India", "1:2", "soon").is_none());
    }
}
