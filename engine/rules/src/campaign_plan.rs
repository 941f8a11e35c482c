//! The campaign planner: before anything is sent, how many of an audience go on each day from
//! one number (or one limit scope) under the profile's limits, and when sending them earns the
//! next tier under the profile's upgrade rule.
//!
//! The plan assumes a day's sends go out at its start, so that the rolling 24 hours free the
//! whole limit by the next day, and that the audience is people not yet counted today. An
//! upgrade is earned when the unique recipients of the last 7 days reach the profile's
//! threshold for the tier, at a quality the rule allows, and applies after the rule's delay:
//! from the first day that starts after it (the threshold is taken to be reached early in the
//! day, as the day's sends go at its start). Below the tiers that usage lifts, a profile with
//! a delivery path (`whatsapp-2025`: 2,000 unique people delivered to in 30 days) earns its
//! verification tier when the plan's deliveries reach the count, after the review time the
//! profile assumes (every send taken as delivered, every person as new). Meta's word still
//! decides; the plan is wagate's projection, as every upgrade wagate computes.

use crate::profile::Profile;
use crate::quality::Quality;

/// Where the number stands when the plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanStart {
    /// People to reach (the eligible audience).
    pub audience: u64,
    /// The tier's index in the profile.
    pub tier: usize,
    /// Unique recipients counted in the rolling 24 h now.
    pub used_24h: u32,
    /// Unique recipients of the last 7 days (wagate's estimate).
    pub unique_7d: u64,
    /// Unique people delivered to within the profile's delivery path's days (0 without one).
    pub delivered_for_path: u64,
    pub quality: Quality,
    /// At most this many a day, the sender's own cap.
    pub daily_cap: Option<u64>,
}

/// One day of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanDay {
    /// Days from the start (0: the first).
    pub day: u32,
    pub tier: usize,
    /// The tier's unique-recipient limit that day (`None`: unlimited).
    pub limit: Option<u32>,
    pub sends: u64,
}

/// The most days a plan runs before it says the rest cannot be placed.
pub const MAX_PLAN_DAYS: u32 = 366;

/// The plan: its days (until the audience is reached, or [`MAX_PLAN_DAYS`]), and what is left
/// unplaced past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub days: Vec<PlanDay>,
    pub unplaced: u64,
}

impl Plan {
    /// The first day on a tier above `from`, if the plan earns one.
    pub fn upgrade_day(&self, from: usize) -> Option<u32> {
        self.days.iter().find(|d| d.tier > from).map(|d| d.day)
    }
}

const DAY_SECS: u64 = 86_400;

pub fn plan(profile: &Profile, start: PlanStart) -> Plan {
    let (mut tier, mut left) = (start.tier, start.audience);
    let mut counts = Counts::new(profile, &start);
    // The next tier Meta is expected to grant: when (seconds from the first day's start) and
    // which. Reached early in a day, it applies from the first day starting after it.
    let mut pending: Option<(u64, usize)> = None;
    let mut days = Vec::new();
    let mut day = 0;
    while left > 0 && day < MAX_PLAN_DAYS {
        let day_starts = u64::from(day) * DAY_SECS;
        while let Some((at, to)) = pending.filter(|&(at, _)| at < day_starts) {
            // Meta judges the new tier at once, on the days up to its grant.
            tier = to;
            pending = counts.earned(tier, at);
        }
        let limit = profile.tier_limit(tier);
        let used = if day == 0 {
            u64::from(start.used_24h)
        } else {
            0
        };
        let room = limit.map_or(u64::MAX, |l| u64::from(l).saturating_sub(used));
        let sends = left.min(room).min(start.daily_cap.unwrap_or(u64::MAX));
        left -= sends;
        days.push(PlanDay {
            day,
            tier,
            limit,
            sends,
        });
        counts.add_day(sends);
        if pending.is_none() {
            pending = counts.earned(tier, day_starts);
        }
        day += 1;
    }
    Plan {
        days,
        unplaced: left,
    }
}

/// The unique recipients the plan projects per day, newest last, over the 7 days of the
/// usage rule and the days of the delivery path.
struct Counts<'a> {
    profile: &'a Profile,
    quality: Quality,
    /// What was counted before the plan is one lump that ages out after the window.
    week: Vec<u64>,
    delivered: Vec<u64>,
}

impl<'a> Counts<'a> {
    fn new(profile: &'a Profile, start: &PlanStart) -> Counts<'a> {
        Counts {
            profile,
            quality: start.quality,
            week: vec![start.unique_7d],
            delivered: vec![start.delivered_for_path],
        }
    }

    fn add_day(&mut self, sends: u64) {
        let path_days = self
            .profile
            .upgrade
            .delivery_path
            .as_ref()
            .map_or(1, |p| p.days);
        for (days, window) in [(7, &mut self.week), (path_days, &mut self.delivered)] {
            window.push(sends);
            if window.len() > days as usize {
                window.remove(0);
            }
        }
    }

    /// The upgrade the counts so far earn at `tier` when judged at `at`: when it comes and
    /// to which tier.
    fn earned(&self, tier: usize, at: u64) -> Option<(u64, usize)> {
        let rule = &self.profile.upgrade;
        if !rule.qualities.contains(&self.quality) {
            return None;
        }
        let week: u64 = self.week.iter().sum();
        if self
            .profile
            .upgrade_threshold(tier)
            .is_some_and(|threshold| week >= threshold)
        {
            return Some((at + u64::from(rule.delay_secs), tier + 1));
        }
        let (path, to) = (rule.delivery_path.as_ref()?, rule.verification_tier?);
        let delivered: u64 = self.delivered.iter().sum();
        (tier < to && delivered >= u64::from(path.unique_recipients))
            .then_some((at + u64::from(path.review_secs), to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(audience: u64, tier: usize) -> PlanStart {
        PlanStart {
            audience,
            tier,
            used_24h: 0,
            unique_7d: 0,
            delivered_for_path: 0,
            quality: Quality::Green,
            daily_cap: None,
        }
    }

    #[test]
    fn each_day_fits_the_limit_and_the_ramp_comes_when_the_rule_says() {
        let profile = Profile::whatsapp_2021();
        let tier_1k = (0..profile.tiers.len())
            .find(|&t| profile.tier_limit(t) == Some(1_000))
            .expect("a 1K tier");
        let plan = plan(&profile, start(50_000, tier_1k));
        assert_eq!(plan.unplaced, 0);
        assert_eq!(plan.days.iter().map(|d| d.sends).sum::<u64>(), 50_000);
        for day in &plan.days {
            assert!(
                day.limit.is_none_or(|l| day.sends <= u64::from(l)),
                "{day:?}"
            );
        }
        // The next tier from the first day after the rule's delay, counted from the day the
        // last 7 days' recipients reach the threshold (twice the limit under the 2021 rule).
        let threshold = profile.upgrade_threshold(tier_1k).unwrap();
        let mut total = 0;
        let reached = plan
            .days
            .iter()
            .find(|d| {
                total += d.sends;
                total >= threshold
            })
            .map(|d| d.day)
            .unwrap();
        let up = plan.upgrade_day(tier_1k).expect("an upgrade");
        let delay_days = profile.upgrade.delay_secs.div_ceil(86_400);
        assert_eq!(up, reached + 1 + delay_days, "{:?}", &plan.days[..4]);
        assert!(plan.days[up as usize].sends > 1_000);
        assert!(plan.days[..up as usize].iter().all(|d| d.sends == 1_000));
    }

    #[test]
    fn a_cap_a_used_morning_and_a_red_rating_shape_the_plan() {
        let profile = Profile::whatsapp_2021();
        let tier_1k = (0..profile.tiers.len())
            .find(|&t| profile.tier_limit(t) == Some(1_000))
            .unwrap();
        let mut capped = start(2_500, tier_1k);
        capped.daily_cap = Some(400);
        capped.used_24h = 900;
        let plan = super::plan(&profile, capped);
        let sends: Vec<u64> = plan.days.iter().map(|d| d.sends).collect();
        assert_eq!(sends, [100, 400, 400, 400, 400, 400, 400]);
        let mut red = start(10_000, tier_1k);
        red.quality = Quality::Red;
        let plan = super::plan(&profile, red);
        assert_eq!(plan.upgrade_day(tier_1k), None, "no upgrade at red");
        assert_eq!(plan.days.len(), 10);
    }

    #[test]
    fn under_2025_the_deliveries_earn_2k_after_the_review_then_usage_lifts_each_tier() {
        let profile = Profile::whatsapp_2025();
        let plan = plan(&profile, start(50_000, 0));
        let sends: Vec<u64> = plan.days.iter().map(|d| d.sends).collect();
        // 2,000 people delivered to by day 7 (250 a day), Meta's review a day, 2K during
        // day 8; half the limit in 7 days lifts it 6 h later, judged at once.
        assert_eq!(
            sends,
            [250, 250, 250, 250, 250, 250, 250, 250, 250, 10_000, 37_750]
        );
        let tiers: Vec<&str> = plan
            .days
            .iter()
            .map(|d| profile.tiers[d.tier].name.as_str())
            .collect();
        // The week's 1,750 already earn 10K at the 2K grant (8 days in): 6 h later.
        assert_eq!(tiers[8..], ["TIER_250", "TIER_10K", "TIER_100K"]);
        assert_eq!(plan.upgrade_day(0), Some(9));
        // Deliveries counted before the plan bring the grant forward; a red rating earns none.
        let mut halfway = start(50_000, 0);
        halfway.delivered_for_path = 1_000;
        assert_eq!(super::plan(&profile, halfway).upgrade_day(0), Some(5));
        let mut red = start(5_000, 0);
        red.quality = Quality::Red;
        let plan = super::plan(&profile, red);
        assert_eq!((plan.upgrade_day(0), plan.days.len()), (None, 20));
    }
}
