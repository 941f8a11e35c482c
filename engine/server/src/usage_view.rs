//! A number's usage as the admin API and the console show it: the limit facts of its scope,
//! times in Unix seconds.

use wagate_rules::clock::Timestamp;
use wagate_rules::usage::Usage;

/// A number's usage as the admin API shows it (times in Unix seconds).
#[derive(serde::Serialize)]
pub(crate) struct UsageView<'a> {
    id: String,
    tier: &'a str,
    limit_24h: Option<u32>,
    unique_recipients_24h: u32,
    unique_recipients_24h_estimate: u64,
    unique_recipients_7d_estimate: u64,
    next_tier: Option<&'a str>,
    upgrade_threshold_7d: Option<u64>,
    upgrade_progress: Option<f64>,
    projected_tier: Option<&'a str>,
    projected_upgrade_at: Option<u64>,
    upgraded_at: Option<u64>,
    quality: &'static str,
    flagged_since: Option<u64>,
    downgrade_at: Option<u64>,
    restricted_until: Option<u64>,
    next_capacity_at: Option<u64>,
    delivery_path: Option<DeliveryPathView<'a>>,
    name_status: &'static str,
}

/// How far a number is along the delivery path to its next tier.
#[derive(serde::Serialize)]
pub(crate) struct DeliveryPathView<'a> {
    tier: &'a str,
    unique_recipients: u64,
    threshold: u32,
    days: u32,
    eligible: bool,
}

pub(crate) fn usage_view(id: u64, usage: &Usage) -> UsageView<'_> {
    let time = |t: Option<Timestamp>| t.map(Timestamp::unix_secs);
    UsageView {
        id: id.to_string(),
        tier: &usage.tier,
        limit_24h: usage.limit,
        unique_recipients_24h: usage.used_24h,
        unique_recipients_24h_estimate: usage.unique_24h_estimate,
        unique_recipients_7d_estimate: usage.unique_7d_estimate,
        next_tier: usage.next_tier.as_deref(),
        upgrade_threshold_7d: usage.upgrade_threshold,
        upgrade_progress: usage.upgrade_progress,
        projected_tier: usage.projected_tier.as_deref(),
        projected_upgrade_at: time(usage.projected_upgrade_at),
        upgraded_at: time(usage.upgraded_at),
        quality: usage.quality.meta_name(),
        flagged_since: time(usage.flagged_since),
        downgrade_at: time(usage.downgrade_at),
        restricted_until: time(usage.restricted_until),
        next_capacity_at: time(usage.next_capacity_at),
        delivery_path: usage.delivery_path.as_ref().map(|path| DeliveryPathView {
            tier: &path.tier,
            unique_recipients: path.unique_recipients,
            threshold: path.threshold,
            days: path.days,
            eligible: path.eligible(),
        }),
        name_status: usage.name_status.name(),
    }
}
