//! A registered business phone number: its identity, its limit scope, quality, restriction
//! and throughput scheduler.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Secs;
use crate::ids::{AccountId, PhoneNumberId, PortfolioId};
use crate::pacing::ThroughputScheduler;
use crate::quality::Quality;
use crate::scope::LimitScope;
use crate::volume::{MonthCount, VolumeCounts};

/// Where Meta's review of the number's display name stands (`name_status`, and the decision of
/// `phone_number_name_update`). An approved name is what Meta asks for the higher template
/// count, migrations and 555 numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum NameStatus {
    #[default]
    Unknown = 0,
    Pending = 1,
    Approved = 2,
    Deferred = 3,
    Rejected = 4,
    Expired = 5,
}

impl NameStatus {
    /// Meta's words for it (`APPROVED`, `AVAILABLE_WITHOUT_REVIEW`, `PENDING_REVIEW`,
    /// `DECLINED`, ...); `None` for one wagate does not know.
    pub fn parse(text: &str) -> Option<NameStatus> {
        Some(match text.to_ascii_uppercase().as_str() {
            "APPROVED" | "AVAILABLE_WITHOUT_REVIEW" => NameStatus::Approved,
            "PENDING_REVIEW" | "PENDING" | "NONE" => NameStatus::Pending,
            "DEFERRED" => NameStatus::Deferred,
            "DECLINED" | "REJECTED" => NameStatus::Rejected,
            "EXPIRED" => NameStatus::Expired,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            NameStatus::Unknown => "unknown",
            NameStatus::Pending => "pending",
            NameStatus::Approved => "approved",
            NameStatus::Deferred => "deferred",
            NameStatus::Rejected => "rejected",
            NameStatus::Expired => "expired",
        }
    }

    fn from_u8(value: u8) -> NameStatus {
        match value {
            1 => NameStatus::Pending,
            2 => NameStatus::Approved,
            3 => NameStatus::Deferred,
            4 => NameStatus::Rejected,
            5 => NameStatus::Expired,
            _ => NameStatus::Unknown,
        }
    }
}

/// What of a number is persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberSnapshot {
    pub id: PhoneNumberId,
    pub index: u32,
    pub account: AccountId,
    pub portfolio: PortfolioId,
    pub quality: Quality,
    pub restricted_until: Secs,
    pub throughput_mps: u32,
    /// Digits of the display number; 0 when not given.
    #[serde(default)]
    pub display: u64,
    #[serde(default)]
    pub name_status: NameStatus,
}

#[derive(Debug)]
pub struct NumberState {
    pub id: PhoneNumberId,
    /// Dense index of the number; the contact-table scope of its people.
    pub index: u32,
    pub account: AccountId,
    pub portfolio: PortfolioId,
    /// Where its unique recipients are counted (itself, or its portfolio).
    pub scope: Arc<LimitScope>,
    pub throughput: ThroughputScheduler,
    /// Digits of the display number; 0 when not given (Meta's read may tell it later).
    display: AtomicU64,
    name_status: AtomicU8,
    quality: AtomicU8,
    restricted_until: AtomicU32,
    /// This calendar month's service messages (the month in the high 32 bits, the count in
    /// the low): a card may make only the first so many of a month free. Kept in memory: at
    /// start-up it is seeded from the ledger's service rows of the month.
    service_month: MonthCount,
    /// Its portfolio's utility and authentication messages of the month per market (shared
    /// by the portfolio's numbers): the volume tier a message is priced at.
    pub volume: Arc<VolumeCounts>,
}

/// What a number shares with others: its limit scope (its own or its portfolio's) and its
/// portfolio's volume counts.
pub struct Shared {
    pub scope: Arc<LimitScope>,
    pub volume: Arc<VolumeCounts>,
}

impl NumberState {
    pub fn new(
        id: PhoneNumberId,
        index: u32,
        account: AccountId,
        portfolio: PortfolioId,
        shared: Shared,
        throughput_mps: u32,
        display: u64,
    ) -> NumberState {
        let Shared { scope, volume } = shared;
        NumberState {
            id,
            index,
            account,
            portfolio,
            scope,
            throughput: ThroughputScheduler::new(throughput_mps),
            display: AtomicU64::new(display),
            name_status: AtomicU8::new(NameStatus::Unknown as u8),
            quality: AtomicU8::new(Quality::Unknown as u8),
            restricted_until: AtomicU32::new(0),
            service_month: MonthCount::default(),
            volume,
        }
    }

    /// Adds `messages` service messages of `month` counted before a restart (the ledger's).
    pub fn seed_service_messages(&self, month: u32, messages: u32) {
        self.service_month.add(month, messages);
    }

    /// The service messages counted in `month` so far.
    pub fn service_messages(&self, month: u32) -> u32 {
        self.service_month.current(month)
    }

    /// Counts one more service message in `month` (a new month starts from one); which it is.
    pub fn count_service_message(&self, month: u32) -> u32 {
        self.service_month.add(month, 1)
    }

    pub fn snapshot(&self) -> NumberSnapshot {
        NumberSnapshot {
            id: self.id,
            index: self.index,
            account: self.account,
            portfolio: self.portfolio,
            quality: self.quality(),
            restricted_until: self.restricted_until(),
            throughput_mps: self.throughput.messages_per_second(),
            display: self.display(),
            name_status: self.name_status(),
        }
    }

    pub fn name_status(&self) -> NameStatus {
        NameStatus::from_u8(self.name_status.load(Ordering::Acquire))
    }

    pub(crate) fn store_name_status(&self, status: NameStatus) {
        self.name_status.store(status as u8, Ordering::Release);
    }

    /// Digits of the display number; 0 when not known.
    pub fn display(&self) -> u64 {
        self.display.load(Ordering::Acquire)
    }

    pub(crate) fn store_display(&self, display: u64) {
        self.display.store(display, Ordering::Release);
    }

    pub fn quality(&self) -> Quality {
        Quality::from_u8(self.quality.load(Ordering::Acquire))
    }

    pub(crate) fn store_quality(&self, quality: Quality) {
        self.quality.store(quality as u8, Ordering::Release);
    }

    /// Business-initiated messages are blocked until this second (0: not restricted).
    #[inline]
    pub fn restricted_until(&self) -> Secs {
        self.restricted_until.load(Ordering::Acquire)
    }

    pub(crate) fn restrict_until(&self, until: Secs) {
        self.restricted_until.store(until, Ordering::Release);
    }
}
