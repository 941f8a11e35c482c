//! Feeding running campaigns to the rules: each round, every running campaign whose start has
//! come gets its next part, as large as the number's limit and the day's cap leave room for
//! (so the rules accept what is fed, and the days go as planned), through the same durable
//! path as any send. The part's outcome and the next position are written together.

use wagate_rules::ids::PhoneNumberId;
use wagate_rules::quiet_hours::QuietHours;
use wagate_rules::template::model::Category;
use wagate_rules::time_zones::utc_offset_minutes;
use wagate_store::Family;

use super::CampaignError;
use crate::campaigns::keys;
use crate::campaigns::record::{Campaign, CampaignState, PauseCause};
use crate::campaigns::upload::read_entry;
use crate::campaigns::CampaignEvent;
use crate::submission::Submission;
use crate::wagate::{SubmitResult, Wagate};

/// The most people fed in one part.
const PART: u64 = 1_024;

/// What one part came to, added to the campaign's record once written.
#[derive(Default)]
struct PartOutcome {
    fed: u64,
    accepted: u64,
    queued: u64,
    cost_micros: u64,
    /// The reasons of those refused, one each.
    refused: Vec<String>,
}

impl Wagate {
    /// One round over the campaigns: pauses and resumes on Meta's word, then a part for each
    /// running one. What the tenants hear of comes back.
    pub fn run_campaigns(&self) -> Result<Vec<CampaignEvent>, CampaignError> {
        let live: Vec<Campaign> = self
            .campaigns
            .lock()
            .values()
            .filter(|c| matches!(c.state, CampaignState::Running | CampaignState::Paused))
            .cloned()
            .collect();
        let mut events = Vec::new();
        for campaign in live {
            self.run_one(campaign, &mut events)?;
        }
        Ok(events)
    }

    /// Moves campaign `id` by `change` (which names the event's reason, or `None` when the
    /// campaign is not in the state to move) and tells its tenant of `event` in the same write:
    /// both are kept or neither. A change that does not apply is nothing (another round, or
    /// an operator, moved it first).
    fn change_and_tell(
        &self,
        id: u64,
        event: &'static str,
        events: &mut Vec<CampaignEvent>,
        change: impl FnOnce(&mut Campaign) -> Option<Option<&'static str>>,
    ) {
        let now = self.now();
        let (mut told, mut happened) = (0, None);
        let mut batch = wagate_store::Batch::default();
        let changed = self.change_campaign_with(id, event, &mut batch, |wagate, c, batch| {
            let reason = change(c)?;
            let news = CampaignEvent::of(c, event, reason);
            told = wagate.write_news(crate::tenant_news::News::Campaign(&news, now), batch);
            happened = Some(news);
            Some(())
        });
        if changed.is_ok() {
            self.news_committed(told);
            events.extend(happened);
        }
    }

    fn run_one(
        &self,
        campaign: Campaign,
        events: &mut Vec<CampaignEvent>,
    ) -> Result<(), CampaignError> {
        let now = self.now().unix_secs();
        let stops = self.meta_stops(&campaign);
        match (campaign.state, stops) {
            (CampaignState::Running, Some(cause)) => {
                self.change_and_tell(campaign.id, "paused", events, |c| {
                    (c.state == CampaignState::Running).then(|| {
                        c.state = CampaignState::Paused;
                        c.paused_by = Some(cause);
                        Some(cause.name())
                    })
                });
                return Ok(());
            }
            (CampaignState::Paused, None)
                if campaign.spec.auto_resume
                    && campaign
                        .paused_by
                        .is_some_and(|by| by != PauseCause::Operator) =>
            {
                self.change_and_tell(campaign.id, "resumed", events, |c| {
                    (c.state == CampaignState::Paused).then(|| {
                        let reason = c.paused_by.map(|by| by.name());
                        c.state = CampaignState::Running;
                        c.paused_by = None;
                        reason
                    })
                });
                return Ok(());
            }
            (CampaignState::Running, None) if now >= campaign.spec.start_at => {}
            _ => return Ok(()),
        }
        if campaign.left() == 0 {
            self.change_and_tell(campaign.id, "done", events, |c| {
                (c.state == CampaignState::Running).then(|| {
                    c.state = CampaignState::Done;
                    c.finished_at = Some(now);
                    None
                })
            });
            return Ok(());
        }
        let size = self
            .room_for(&campaign, now)?
            .min(PART)
            .min(campaign.left());
        if size == 0 {
            return Ok(());
        }
        let outcome = self.feed_part(&campaign, size)?;
        // Whatever the campaign's state is now (an operator may have paused it meanwhile),
        // what was fed is counted and the position moves past it.
        self.change_campaign(campaign.id, "fed", |_, next| {
            let day = if next.started_at.is_none() {
                next.started_at = Some(now);
                0
            } else {
                next.day_at(now)
            };
            if next.days.len() <= day {
                next.days.resize(day + 1, 0);
            }
            next.days[day] += outcome.accepted;
            next.cursor += outcome.fed;
            next.accepted += outcome.accepted;
            next.queued += outcome.queued;
            next.accepted_cost_micros += outcome.cost_micros;
            for name in outcome.refused {
                *next.refused.entry(name).or_default() += 1;
            }
            Some(())
        })?;
        Ok(())
    }

    /// How many may be fed now: the room under the limit of the number's scope, under the
    /// day's cap, and no further than the plan has gone by the end of the day (a day that fell
    /// short under Meta's limits is caught up on the next; past the plan's days, the room
    /// alone). Meta raising the tier mid-day does not run ahead of the plan: the ramp the
    /// business approved holds.
    fn room_for(&self, campaign: &Campaign, now: u64) -> Result<u64, CampaignError> {
        let day = if campaign.started_at.is_some() {
            campaign.day_at(now)
        } else {
            0
        };
        let today = campaign.days.get(day).copied().unwrap_or(0);
        let cap = campaign
            .spec
            .daily_cap
            .map_or(u64::MAX, |cap| cap.saturating_sub(today));
        let planned = &campaign.plan.sends;
        let by_plan = if day < planned.len() {
            let by_today: u64 = planned[..=day].iter().sum();
            by_today.saturating_sub(campaign.cursor)
        } else {
            u64::MAX
        };
        let allowed = cap.min(by_plan);
        // The day's share fed already: the shards are not asked for the number's usage.
        if allowed == 0 {
            return Ok(0);
        }
        let usage = self.limit_usage(PhoneNumberId(campaign.spec.number))?;
        let room = usage.limit.map_or(u64::MAX, |limit| {
            u64::from(limit.saturating_sub(usage.used_24h))
        });
        Ok(room.min(allowed))
    }

    /// Feeds the next `size` people of `campaign`; what the rules made of them.
    fn feed_part(&self, campaign: &Campaign, size: u64) -> Result<PartOutcome, CampaignError> {
        let id = campaign.id;
        let number = PhoneNumberId(campaign.spec.number);
        let mut submissions = Vec::with_capacity(size as usize);
        let (start, end) = (
            keys::audience(id, campaign.cursor),
            keys::audience(id, campaign.cursor + size),
        );
        let mut unreadable = 0;
        let now = self.now();
        let quiet = campaign.spec.quiet_hours.map(|[from, to]| QuietHours {
            allowed_from_minute: from,
            allowed_to_minute: to,
            held: u8::MAX,
        });
        self.store
            .scan(Family::Campaigns, &start, &end, &mut |key, value| {
                let position = u64::from_be_bytes(key[9..17].try_into().expect("8 bytes"));
                let key = Some(keys::send_key(id, position));
                match read_entry(value).and_then(|(_, payload)| {
                    Submission::from_send_body(number, payload.to_vec(), key, true).ok()
                }) {
                    Some(mut read) => {
                        // The campaign's own quiet hours: held to the person's allowed minute.
                        if let Some(quiet) = &quiet {
                            let request = &mut read.submission.request;
                            let offset = utc_offset_minutes(request.to);
                            request.options.send_at =
                                quiet.hold_until(Category::Marketing, now, offset);
                        }
                        submissions.push(read.submission)
                    }
                    None => unreadable += 1,
                }
                true
            })?;
        let mut outcome = PartOutcome {
            fed: submissions.len() as u64 + unreadable,
            ..PartOutcome::default()
        };
        if unreadable > 0 {
            outcome.refused.extend(std::iter::repeat_n(
                "invalid".to_string(),
                unreadable as usize,
            ));
        }
        for result in self.submit_many(submissions) {
            match result? {
                SubmitResult::Accepted { accepted, .. } => {
                    outcome.accepted += 1;
                    outcome.cost_micros += accepted.price_micros;
                }
                SubmitResult::Queued { .. } => outcome.queued += 1,
                SubmitResult::Refused { name, .. } => outcome.refused.push(name),
                // Not asked to queue never answers deferred; counted as refused if it did.
                SubmitResult::Deferred { reason, .. } => outcome.refused.push(reason.name().into()),
            }
        }
        Ok(outcome)
    }
}
