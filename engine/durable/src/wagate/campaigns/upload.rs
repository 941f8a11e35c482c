//! A campaign's audience as it is uploaded, a part at a time: each person screened by the rules
//! on their shard (consent, a block, reach; the price at today's prices), the eligible kept
//! under their position, those left out counted by reason; then the plan for those kept.

use wagate_rules::campaign_plan::{plan, PlanStart};
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::template::model::Category;
use wagate_rules::topics::TopicSet;
use wagate_store::{Batch, Family};

use super::CampaignError;
use crate::campaigns::keys;
use crate::campaigns::record::{Campaign, CampaignSpec, CampaignState, PlannedDays};
use crate::campaigns::AudienceLine;
use crate::wagate::Wagate;
use crate::workers::Screen;

/// The most lines one campaign's audience holds: the upload keeps a set of the people seen
/// (8 bytes a person), which this bounds.
pub(super) const MAX_AUDIENCE: u64 = 20_000_000;

impl Wagate {
    /// The category and topics of a campaign's template, which every person is screened for.
    pub(super) fn campaign_template(
        &self,
        spec: &CampaignSpec,
    ) -> Result<(Category, TopicSet), CampaignError> {
        let registry = self.registry();
        let template = registry
            .number(PhoneNumberId(spec.number))
            .and_then(|number| registry.template(number.account, &spec.template, &spec.language))
            .ok_or_else(|| CampaignError::UnknownTemplate {
                name: spec.template.clone(),
                language: spec.language.clone(),
            })?;
        let named = template
            .definition
            .topic
            .as_deref()
            .and_then(|topic| registry.topic_names().topic(topic).ok())
            .unwrap_or_default();
        let category = template.category();
        Ok((category, TopicSet::of_category(category).union(named)))
    }

    /// Screens and keeps one part of campaign `id`'s audience, in one synced write.
    pub fn add_audience(&self, id: u64, lines: Vec<AudienceLine>) -> Result<(), CampaignError> {
        let campaign = self.campaign(id).ok_or(CampaignError::Unknown(id))?;
        if campaign.state != CampaignState::Uploading {
            return Err(CampaignError::WrongState {
                id,
                state: campaign.state,
                action: "uploaded to",
            });
        }
        if campaign.received + lines.len() as u64 > MAX_AUDIENCE {
            return Err(CampaignError::AudienceTooLarge(MAX_AUDIENCE));
        }
        let (category, topics) = self.campaign_template(&campaign.spec)?;
        let number = PhoneNumberId(campaign.spec.number);
        let mut invalid = 0u64;
        let mut duplicates = 0u64;
        let mut people = Vec::with_capacity(lines.len());
        {
            let mut seen = self
                .campaign_uploads
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let seen = seen.entry(id).or_default();
            for line in lines {
                match line {
                    AudienceLine::Invalid => invalid += 1,
                    AudienceLine::Person { to, payload } => {
                        if seen.insert(to.digits()) {
                            people.push((to, payload));
                        } else {
                            duplicates += 1;
                        }
                    }
                }
            }
        }
        let screened = self.pool.submit(
            people
                .iter()
                .map(|(person, _)| Screen {
                    number,
                    person: *person,
                    category,
                    topics,
                })
                .collect(),
        )?;
        // The people kept and the record's counts in one write.
        let mut batch = Batch::default();
        self.change_campaign_with(id, "uploaded to", &mut batch, |_, next, batch| {
            if next.state != CampaignState::Uploading {
                return None;
            }
            next.received += invalid + duplicates + people.len() as u64;
            add_to(&mut next.excluded, "invalid", invalid);
            add_to(&mut next.excluded, "duplicate", duplicates);
            for ((to, payload), screened) in people.into_iter().zip(screened) {
                if let Some(refusal) = screened.refusal {
                    add_to(&mut next.excluded, refusal.name(), 1);
                    continue;
                }
                let mut value = Vec::with_capacity(8 + payload.len());
                value.extend_from_slice(&to.digits().to_be_bytes());
                value.extend_from_slice(&payload);
                batch.put(Family::Campaigns, keys::audience(id, next.audience), value);
                next.audience += 1;
                next.estimated_cost_micros += screened.price_micros;
            }
            Some(())
        })?;
        Ok(())
    }

    /// Forgets the people seen by campaign `id`'s upload (it ended, one way or the other).
    fn forget_upload(&self, id: u64) {
        self.campaign_uploads
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Ends campaign `id`'s upload: its plan is made under the number's limits as they stand,
    /// and it waits to be started.
    pub fn finish_upload(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.forget_upload(id);
        let campaign = self.campaign(id).ok_or(CampaignError::Unknown(id))?;
        let planned = self.plan_days(
            PhoneNumberId(campaign.spec.number),
            campaign.audience,
            campaign.spec.daily_cap,
        )?;
        self.change_campaign(id, "planned", move |_, c| {
            (c.state == CampaignState::Uploading).then(|| {
                c.state = CampaignState::Planned;
                c.plan = planned;
            })
        })
    }

    /// Drops an upload that failed part-way: the campaign is cancelled.
    pub fn abandon_upload(&self, id: u64) -> Result<Campaign, CampaignError> {
        self.forget_upload(id);
        self.cancel_campaign(id)
    }

    /// The plan for `audience` people from `number` under its limits as they stand now.
    pub fn plan_days(
        &self,
        number: PhoneNumberId,
        audience: u64,
        daily_cap: Option<u64>,
    ) -> Result<PlannedDays, CampaignError> {
        let usage = self.usage(number)?;
        let profile = self.registry().profile();
        let tier = profile
            .tiers
            .iter()
            .position(|t| t.name == usage.tier)
            .unwrap_or(0);
        let planned = plan(
            profile,
            PlanStart {
                audience,
                tier,
                used_24h: usage.used_24h,
                unique_7d: usage.unique_7d_estimate,
                delivered_for_path: usage
                    .delivery_path
                    .as_ref()
                    .map_or(0, |p| p.unique_recipients),
                quality: usage.quality,
                daily_cap,
            },
        );
        let upgrade_day = planned.upgrade_day(tier);
        Ok(PlannedDays {
            sends: planned.days.iter().map(|d| d.sends).collect(),
            tiers: planned
                .days
                .iter()
                .map(|d| profile.tiers[d.tier].name.clone())
                .collect(),
            limits: planned.days.iter().map(|d| d.limit).collect(),
            upgrade_day,
            upgrade_to: upgrade_day
                .map(|day| profile.tiers[planned.days[day as usize].tier].name.clone()),
            unplaced: planned.unplaced,
        })
    }
}

fn add_to(counts: &mut std::collections::BTreeMap<String, u64>, reason: &str, n: u64) {
    if n > 0 {
        *counts.entry(reason.to_string()).or_default() += n;
    }
}
