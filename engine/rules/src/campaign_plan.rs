//! The campaign planner: before anything is sent, how many of an audience go on each day from
//! one number (or one limit scope) under the profile's limits, and when sending them earns the
//! next tier under the profile's upgrade rule.
//!
//! The plan assumes a day's sends go out at its start, so that the rolling 24 hours free the
//! whole limit by the next day, and that the audience is people not yet counted today. An
//! upgrade is earned when the unique recipients of the last 7 days reach the profile's
//! threshold for the tier, at a quality the rule allows, and applies after the rule's delay:
//! from the first day that starts after it. Meta's word still decides; the plan is wagate's
//! projection, as every upgrade wagate computes.

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

pub fn plan(profile: &Profile, start: PlanStart) -> Plan {
    let rule = &profile.upgrade;
    let delay_days = rule.delay_secs.div_ceil(86_400);
    let (mut tier, mut left) = (start.tier, start.audience);
    // Unique recipients per past day, newest last: the 7-day count is their sum. What was
    // counted before the plan is spread as one lump that ages out after 7 days.
    let mut history: Vec<u64> = vec![start.unique_7d];
    let mut upgrade_on: Option<(u32, usize)> = None;
    let mut days = Vec::new();
    let mut day = 0;
    while left > 0 && day < MAX_PLAN_DAYS {
        if let Some((on, to)) = upgrade_on {
            if day >= on {
                tier = to;
                upgrade_on = None;
            }
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
        history.push(sends);
        if history.len() > 7 {
            history.remove(0);
        }
        let seven_days: u64 = history.iter().sum();
        if upgrade_on.is_none() && rule.qualities.contains(&start.quality) {
            if let Some(threshold) = profile.upgrade_threshold(tier) {
                if seven_days >= threshold {
                    upgrade_on = Some((day + 1 + delay_days, tier + 1));
                }
            }
        }
        day += 1;
    }
    Plan {
        days,
        unplaced: left,
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
}
