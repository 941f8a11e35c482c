//! What `Wagate` does with campaigns (`crate::campaigns` holds their data): creation and the
//! upload ([`upload`]), the operator's start, pause, resume and cancel, Meta's word over a
//! running one ([`meta_word`]), and the feed ([`feed`]).

mod feed;
mod meta_word;
mod upload;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use wagate_store::{Batch, Family, StoreError};

use super::admin::AdminError;
use super::Wagate;
use crate::campaigns::keys;
use crate::campaigns::record::{Campaign, CampaignSpec, CampaignState, PauseCause, PlannedDays};
use crate::campaigns::DeliveryCounts;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no campaign {0}")]
    Unknown(u64),
    #[error("campaign {id} is {}: it cannot be {action}", state.name())]
    WrongState {
        id: u64,
        state: CampaignState,
        action: &'static str,
    },
    #[error("a campaign's audience is at most {0} people: upload the rest as another")]
    AudienceTooLarge(u64),
    #[error("template '{name}' does not exist in language '{language}'")]
    UnknownTemplate { name: String, language: String },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Submit(#[from] crate::SubmitError),
}

impl Wagate {
    /// A new campaign, uploading: its audience comes next ([`Wagate::add_audience`]).
    pub fn create_campaign(&self, spec: CampaignSpec) -> Result<Campaign, CampaignError> {
        self.campaign_template(&spec)?;
        let id = self.campaigns.next_id.fetch_add(1, Ordering::Relaxed);
        let campaign = Campaign {
            id,
            spec,
            state: CampaignState::Uploading,
            paused_by: None,
            created_at: self.now().unix_secs(),
            started_at: None,
            finished_at: None,
            quality_floor: 0,
            received: 0,
            audience: 0,
            excluded: BTreeMap::new(),
            estimated_cost_micros: 0,
            plan: PlannedDays::default(),
            cursor: 0,
            accepted: 0,
            queued: 0,
            refused: BTreeMap::new(),
            days: Vec::new(),
            accepted_cost_micros: 0,
            events: 0,
        };
        let mut batch = Batch::default();
        batch.put(Family::Campaigns, keys::record(id), campaign.encode());
        let mut records = self.campaigns.lock();
        self.store.write(&batch, true)?;
        records.insert(id, campaign.clone());
        Ok(campaign)
    }

    pub fn campaign(&self, id: u64) -> Option<Campaign> {
        self.campaigns.lock().get(&id).cloned()
    }

    /// Every campaign, oldest first.
    pub fn campaigns(&self) -> Vec<Campaign> {
        self.campaigns.lock().values().cloned().collect()
    }

    /// How many campaigns are in each state (every state named, for `/metrics`).
    pub fn campaigns_by_state(&self) -> Vec<(&'static str, u64)> {
        let records = self.campaigns.lock();
        CampaignState::ALL
            .iter()
            .map(|state| {
                let count = records.values().filter(|c| c.state == *state).count();
                (state.name(), count as u64)
            })
            .collect()
    }

    /// The delivery counts of a campaign's sends so far, read together: a status that moves
    /// a send on counts each state it passes in one write, and one scan sees one point in
    /// time, so the counts never show a send delivered but not sent.
    pub fn campaign_deliveries(&self, id: u64) -> Result<DeliveryCounts, StoreError> {
        use crate::message::Delivery;
        let mut counts = DeliveryCounts::default();
        let (start, end) = (keys::counter(id, 0), keys::counter(id, u8::MAX));
        self.store
            .scan(Family::Campaigns, &start, &end, &mut |key, value| {
                let count = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                if key.last() == Some(&keys::CHARGED) {
                    let second = value
                        .get(8..16)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_le_bytes);
                    (counts.priced, counts.reconciled_micros) = (count, second);
                    return true;
                }
                let slot = match key.last().map(|&what| Delivery::from_u8(what)) {
                    Some(Some(Delivery::Sent)) => &mut counts.sent,
                    Some(Some(Delivery::Delivered)) => &mut counts.delivered,
                    Some(Some(Delivery::Read)) => &mut counts.read,
                    Some(Some(Delivery::Failed)) => &mut counts.failed,
                    _ => return true,
                };
                *slot = count;
                true
            })?;
        Ok(counts)
    }

    /// Starts a planned campaign: it is fed from its start time on.
    pub fn start_campaign(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.change_campaign(id, "started", |wagate, c| {
            (c.state == CampaignState::Planned).then(|| {
                c.state = CampaignState::Running;
                c.quality_floor = wagate.quality_of(c.spec.number);
            })
        })
    }

    /// Pauses a running campaign until the operator resumes it.
    pub fn pause_campaign(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.change_campaign(id, "paused", |_, c| {
            matches!(c.state, CampaignState::Running | CampaignState::Paused).then(|| {
                c.state = CampaignState::Paused;
                c.paused_by = Some(PauseCause::Operator);
            })
        })
    }

    /// Resumes a paused campaign; the rating it goes on at is the floor from now on.
    pub fn resume_campaign(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.change_campaign(id, "resumed", |wagate, c| {
            (c.state == CampaignState::Paused).then(|| {
                c.state = CampaignState::Running;
                c.paused_by = None;
                c.quality_floor = wagate.quality_of(c.spec.number);
            })
        })
    }

    /// Cancels a campaign not over yet: nobody more is fed (sends already accepted go).
    pub fn cancel_campaign(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.change_campaign(id, "cancelled", |wagate, c| {
            (!c.state.is_over()).then(|| {
                c.state = CampaignState::Cancelled;
                c.finished_at = Some(wagate.now().unix_secs());
            })
        })
    }

    /// Applies `change` to campaign `id` if it allows (`Some`), written before the answer.
    fn change_campaign(
        &self,
        id: u64,
        action: &'static str,
        change: impl FnOnce(&Wagate, &mut Campaign) -> Option<()>,
    ) -> Result<Campaign, CampaignError> {
        self.change_campaign_with(id, action, &mut Batch::default(), |wagate, c, _| {
            change(wagate, c)
        })
    }

    /// [`Wagate::change_campaign`], with what `change` puts in `batch` written in the same
    /// synced write as the record, under the lock of the records in memory.
    fn change_campaign_with(
        &self,
        id: u64,
        action: &'static str,
        batch: &mut Batch,
        change: impl FnOnce(&Wagate, &mut Campaign, &mut Batch) -> Option<()>,
    ) -> Result<Campaign, CampaignError> {
        let mut records = self.campaigns.lock();
        let current = records.get(&id).ok_or(CampaignError::Unknown(id))?;
        let mut next = current.clone();
        if change(self, &mut next, batch).is_none() {
            return Err(CampaignError::WrongState {
                id,
                state: current.state,
                action,
            });
        }
        batch.put(Family::Campaigns, keys::record(id), next.encode());
        self.store.write(batch, true)?;
        records.insert(id, next.clone());
        Ok(next)
    }

    fn quality_of(&self, number: u64) -> u8 {
        self.registry()
            .number(wagate_rules::PhoneNumberId(number))
            .map_or(0, |n| n.quality() as u8)
    }
}
