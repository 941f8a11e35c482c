//! Campaigns: one template sent to an uploaded audience from one number, planned before
//! anything goes and then fed to the rules a part at a time, as the number's limit and the
//! campaign's daily cap leave room, over as many days as that takes.
//!
//! Each person's send carries an idempotency key made of the campaign and their position, and
//! the feed's position is written after each part: a crash between the two feeds the part
//! again and the keys answer what was decided the first time, so nobody is sent twice. What
//! Meta says (a restricted number, a lower quality rating, a paused template) pauses a running
//! campaign before its next part.
//!
//! Records live in memory (a few per tenant) and on disk in [`Family::Campaigns`]; every change
//! is written, synced, under the lock that guards the memory copy, so the two never disagree.
//! This module owns the data (records, keys, the audience's lines, the delivery counters); what
//! `Wagate` does with them is `wagate::campaigns`.

pub(crate) mod keys;
pub mod record;
pub(crate) mod upload;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use wagate_store::{Batch, Family, Store, StoreError};

pub(crate) use keys::campaign_of;
pub use record::{Campaign, CampaignSpec, CampaignState, PauseCause, PlannedDays};
pub use upload::{AudienceLine, Seen};

/// Something a campaign did that its tenant hears of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignEvent {
    pub campaign: u64,
    pub tenant: String,
    pub number: u64,
    /// `paused`, `resumed` or `done`.
    pub event: &'static str,
    pub reason: Option<&'static str>,
    /// The campaign's count of events told: each callback's identity.
    pub sequence: u32,
}

impl CampaignEvent {
    pub(crate) fn of(
        campaign: &mut Campaign,
        event: &'static str,
        reason: Option<&'static str>,
    ) -> Self {
        campaign.events += 1;
        CampaignEvent {
            campaign: campaign.id,
            tenant: campaign.spec.tenant.clone(),
            number: campaign.spec.number,
            event,
            reason,
            sequence: campaign.events,
        }
    }
}

/// Delivery counts of a campaign's sends, from Meta's statuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    /// Sends Meta priced (its statuses' pricing, net of the undelivered it took back), and
    /// what it charged for them, in micro-dollars: the cost reconciled.
    pub priced: u64,
    pub reconciled_micros: u64,
}

pub(crate) struct Campaigns {
    records: Mutex<BTreeMap<u64, Campaign>>,
    pub(crate) next_id: AtomicU64,
}

impl Campaigns {
    /// The campaigns on disk; an upload a stop interrupted is cancelled (its request failed).
    pub(crate) fn load(store: &dyn Store) -> Result<Campaigns, StoreError> {
        let mut records = BTreeMap::new();
        let (start, end) = keys::records();
        store.scan(Family::Campaigns, &start, &end, &mut |_, value| {
            if let Some(campaign) = Campaign::decode(value) {
                records.insert(campaign.id, campaign);
            }
            true
        })?;
        let mut batch = Batch::default();
        for campaign in records.values_mut() {
            if campaign.state == CampaignState::Uploading {
                campaign.state = CampaignState::Cancelled;
                batch.put(
                    Family::Campaigns,
                    keys::record(campaign.id),
                    campaign.encode(),
                );
            }
        }
        if !batch.is_empty() {
            store.write(&batch, true)?;
        }
        let next = records.keys().next_back().map_or(1, |id| id + 1);
        Ok(Campaigns {
            records: Mutex::new(records),
            next_id: AtomicU64::new(next),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Campaign>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds to a campaign's delivery counter for `what` (in a status's batch).
pub(crate) fn count_delivery(batch: &mut Batch, campaign: u64, what: crate::message::Delivery) {
    batch.add(Family::Campaigns, keys::counter(campaign, what as u8), 1, 0);
}

/// Adds Meta's charge of one of a campaign's sends (`sign` -1: taken back) to its reconciled
/// cost (in the status's batch).
pub(crate) fn count_charge(batch: &mut Batch, campaign: u64, micros: u64, sign: i64) {
    let (messages, micros) = if sign >= 0 {
        (1, micros)
    } else {
        (0u64.wrapping_sub(1), 0u64.wrapping_sub(micros))
    };
    batch.add(
        Family::Campaigns,
        keys::counter(campaign, keys::CHARGED),
        messages,
        micros,
    );
}
