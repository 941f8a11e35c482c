//! The immutable context every shard shares: the profile, the registries and the rule objects
//! built from configuration once.

use std::sync::Arc;

use crate::clock::MICROS_PER_SEC;
use crate::config::{ConfigError, EngineConfig};
use crate::hash::{mix64, MixHashMap};
use crate::ids::PhoneNumberId;
use crate::keywords::KeywordBook;
use crate::pacing::{MarketingCap, PairRate};
use crate::profile::Profile;
use crate::quiet_hours::QuietHours;
use crate::registry::Registry;
use crate::sketch::hll::{index_and_rank, shard_of_register};
use crate::topics::TopicNames;

/// Unique recipients are counted over a rolling 24 h, whatever the profile.
pub const LIMIT_WINDOW_SECS: u32 = 86_400;
/// The period upgrades are earned over: unique recipients in the last 7 days.
pub const WEEK_SECS: u32 = 7 * 86_400;

/// Media captions, in both profiles.
pub const MAX_CAPTION_CHARS: usize = 1_024;

#[derive(Debug)]
pub struct Core {
    pub profile: Arc<Profile>,
    pub registry: Registry,
    pub pair_rate: PairRate,
    pub marketing_cap: MarketingCap,
    pub horizon_micros: u64,
    /// Each number's consent keywords.
    pub keywords: KeywordBook,
    /// Each number's automations.
    pub automations: crate::automations::AutomationBook,
    pub shards: usize,
    /// See [`EngineConfig::apply_projected_upgrades`].
    pub apply_projected_upgrades: bool,
    /// Each number's quiet hours, where its tenant set them.
    pub quiet_hours: MixHashMap<PhoneNumberId, QuietHours>,
}

impl Core {
    pub fn new(config: &EngineConfig) -> Result<Core, ConfigError> {
        config.validate()?;
        let profile = Arc::new(config.profile.clone());
        let registry = Registry::new(profile.clone(), config.shards);
        registry.keep_consent_per_number(config.consent_per_number.iter().copied());
        registry.keep_pools(&config.pools);
        registry.name_topics(TopicNames::new(&config.topics)?);
        Ok(Core {
            registry,
            pair_rate: PairRate {
                interval: profile.pacing.pair_interval_secs,
                burst: profile.pacing.pair_burst,
            },
            marketing_cap: MarketingCap {
                cap: config.marketing_cap_per_day,
            },
            horizon_micros: u64::from(config.schedule_horizon_secs) * MICROS_PER_SEC,
            keywords: KeywordBook::new(&config.keywords, &config.number_keywords),
            automations: crate::automations::AutomationBook::new(&config.automations),
            shards: config.shards,
            apply_projected_upgrades: config.apply_projected_upgrades,
            quiet_hours: config.quiet_hours.iter().copied().collect(),
            profile,
        })
    }
}

/// The shard that owns a person: chosen by the bits that also choose their sketch register.
#[inline]
pub fn shard_of_person(person_hash: u64, shards: usize) -> usize {
    shard_of_register(index_and_rank(person_hash).0, shards)
}

/// The shard that owns the person with these digits.
pub fn shard_for(person_digits: u64, shards: usize) -> usize {
    shard_of_person(mix64(person_digits), shards)
}
