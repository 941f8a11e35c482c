//! The ledger as stored: its rows (number, day, category, market; wagate's estimate beside
//! what Meta charged) read back, and the counts of the month they seed at start-up (each
//! number's service messages, each portfolio's volume per market), so that a restart prices
//! the month's next message as if it had not happened.

use wagate_rules::clock::{month_of, Timestamp};
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::price::{Ledger, LedgerKey, LedgerTotals};
use wagate_rules::rate_cards::RateCards;
use wagate_rules::registry::Registry;
use wagate_rules::template::model::Category;
use wagate_rules::volume::MarketId;
use wagate_store::keys::{decode_ledger_key, LedgerRowKey, LedgerSide};
use wagate_store::{Family, Store, StoreError};

use crate::family_scan::everything;

/// One side of the ledger as stored, markets by their ids on `cards` (a market no card names
/// any more is read as `MarketId::NONE`).
pub(crate) fn read_ledger(
    store: &dyn Store,
    side: LedgerSide,
    cards: &RateCards,
) -> Result<Ledger, StoreError> {
    let mut ledger = Ledger::default();
    each_row(store, |row, totals| {
        if row.side == side {
            ledger.add_row(
                LedgerKey {
                    number: PhoneNumberId(row.number),
                    category: Category::ALL[usize::from(row.category).min(3)],
                    day: row.day,
                    market: cards.market_named(row.market).unwrap_or(MarketId::NONE),
                },
                totals,
            );
        }
    })?;
    Ok(ledger)
}

fn each_row(
    store: &dyn Store,
    mut visit: impl FnMut(LedgerRowKey<'_>, LedgerTotals),
) -> Result<(), StoreError> {
    everything(store, Family::Ledger, |key, value| {
        if let (Some(row), Ok(counters)) = (decode_ledger_key(key), <[u8; 16]>::try_from(value)) {
            let (messages, micros) = counters.split_at(8);
            visit(
                row,
                LedgerTotals {
                    messages: u64::from_le_bytes(messages.try_into().unwrap_or_default()),
                    micros: u64::from_le_bytes(micros.try_into().unwrap_or_default()),
                },
            );
        }
    })
}

/// Seeds the month of `now` from the estimate rows: each number's service messages, and its
/// portfolio's utility and authentication messages per market (numbers of a portfolio share
/// its counts, so their rows add up). Numbers no longer registered are skipped.
pub(crate) fn seed_month_counts(
    store: &dyn Store,
    registry: &Registry,
    now: Timestamp,
) -> Result<(), StoreError> {
    let month = month_of(now.unix_secs());
    let cards = &registry.profile().rate_cards;
    each_row(store, |row, totals| {
        let in_month = month_of(u64::from(row.day) * 86_400) == month;
        if row.side != LedgerSide::Estimate || !in_month {
            return;
        }
        let Some(number) = registry.number(PhoneNumberId(row.number)) else {
            return;
        };
        let messages = u32::try_from(totals.messages).unwrap_or(u32::MAX);
        match Category::ALL[usize::from(row.category).min(3)] {
            Category::Service => number.seed_service_messages(month, messages),
            category @ (Category::Utility | Category::Authentication) => {
                if let Some(market) = cards.market_named(row.market) {
                    number.volume.seed(market, category, month, messages);
                }
            }
            Category::Marketing => {}
        }
    })
}
