//! The messaging-limit facts of a scope, as a sender or operator wants to see them.

use crate::clock::{Secs, Timestamp};
use crate::profile::Profile;
use crate::quality::Quality;
use crate::scope::LimitScope;

#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub tier: String,
    /// Unique recipients allowed per rolling 24 h; `None` when unlimited.
    pub limit: Option<u32>,
    /// Unique recipients of business-initiated messages in the last 24 h (exact).
    pub used_24h: u32,
    /// The same from the sketch (approximate, mergeable across machines).
    pub unique_24h_estimate: u64,
    /// Unique recipients over the last 7 days (sketch): what upgrades are computed from.
    pub unique_7d_estimate: u64,
    pub next_tier: Option<String>,
    /// 7-day unique recipients that earn the next tier.
    pub upgrade_threshold: Option<u64>,
    /// `unique_7d_estimate / upgrade_threshold`, capped at 1.
    pub upgrade_progress: Option<f64>,
    /// wagate's projection: the tier its 7-day count earns and when Meta is expected to apply
    /// it (the profile's delay after the criteria were met). It admits nobody until Meta
    /// confirms (or, where the operator allows, wagate confirms it on the exact count).
    pub projected_tier: Option<String>,
    pub projected_upgrade_at: Option<Timestamp>,
    /// When the tier last went up (Meta's word, or a confirmed projection).
    pub upgraded_at: Option<Timestamp>,
    pub quality: Quality,
    pub flagged_since: Option<Timestamp>,
    /// When a flag not recovered from costs a tier.
    pub downgrade_at: Option<Timestamp>,
    pub restricted_until: Option<Timestamp>,
    /// When the oldest counted recipient leaves the window (capacity frees).
    pub next_capacity_at: Option<Timestamp>,
    /// How far the scope is along the profile's delivery path, while it is below the tier
    /// that path leads to (the durable engine counts deliveries; `None` elsewhere).
    pub delivery_path: Option<DeliveryPathProgress>,
    /// Meta's review of the number's display name (the durable engine fills it in).
    pub name_status: crate::number::NameStatus,
}

/// Unique recipients of delivered business-initiated messages within the path's days, against
/// the number that makes the scope eligible for Meta's review (and the tier it may grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPathProgress {
    pub tier: String,
    pub unique_recipients: u64,
    pub threshold: u32,
    pub days: u32,
}

impl DeliveryPathProgress {
    pub fn eligible(&self) -> bool {
        self.unique_recipients >= u64::from(self.threshold)
    }
}

fn time(secs: Option<Secs>) -> Option<Timestamp> {
    secs.map(Timestamp::from_secs)
}

impl Usage {
    pub fn of(profile: &Profile, scope: &LimitScope, restricted_until: Secs, now: Secs) -> Usage {
        let tier = scope.tier();
        let threshold = profile.upgrade_threshold(tier);
        let week = scope.sketches.week_estimate();
        let flagged_since = scope.flagged_since();
        Usage {
            tier: profile.tiers[tier].name.clone(),
            limit: profile.tier_limit(tier),
            used_24h: scope.used(),
            unique_24h_estimate: scope.sketches.day_estimate(),
            unique_7d_estimate: week,
            next_tier: profile.tiers.get(tier + 1).map(|t| t.name.clone()),
            upgrade_threshold: threshold,
            upgrade_progress: threshold.map(|t| (week as f64 / t as f64).min(1.0)),
            projected_tier: scope
                .upgrade_at()
                .and_then(|_| profile.tiers.get(tier + 1))
                .map(|t| t.name.clone()),
            projected_upgrade_at: time(scope.upgrade_at()),
            upgraded_at: time(scope.upgraded_at()),
            quality: scope.quality(),
            flagged_since: time(flagged_since),
            downgrade_at: time(flagged_since.and_then(|since| {
                profile
                    .downgrade
                    .as_ref()
                    .map(|rule| since.saturating_add(rule.flagged_secs))
            })),
            restricted_until: time(Some(restricted_until).filter(|until| *until > now)),
            next_capacity_at: time(scope.next_expiry()),
            delivery_path: None,
            name_status: crate::number::NameStatus::Unknown,
        }
    }
}
