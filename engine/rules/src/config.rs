//! Engine configuration: the profile plus the sender-side choices the rules leave open.

use crate::keywords::KeywordError;
pub use crate::keywords::{ConsentKeywords, NumberKeywords};
use crate::pacing::MarketingCap;
use crate::profile::Profile;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("shards must be 1..=64, not {0}")]
    Shards(usize),
    #[error("marketing_cap_per_day must be 0 (off), 1 or 2, not {0}")]
    MarketingCap(u8),
    #[error("schedule_horizon_secs must be at least 1")]
    Horizon,
    #[error(transparent)]
    Keywords(#[from] KeywordError),
    #[error(transparent)]
    Topics(#[from] crate::topics::TopicError),
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub profile: Profile,
    /// Worker shards that own contacts (persons are placed by hash).
    pub shards: usize,
    /// Per-person marketing templates in any 24 h (0 = no cap of our own).
    pub marketing_cap_per_day: u8,
    /// How far ahead the throughput scheduler may book a slot before a send is deferred.
    pub schedule_horizon_secs: u32,
    /// The consent keywords of every number without a tenant's own.
    pub keywords: ConsentKeywords,
    /// Tenants' own keywords, for their numbers.
    pub number_keywords: Vec<NumberKeywords>,
    /// Tenants' automations (keywords, statuses), for their numbers.
    pub automations: Vec<crate::automations::NumberAutomations>,
    /// Numbers whose people's consent is their own rather than their business's (a tenant's
    /// per-number consent scope).
    pub consent_per_number: Vec<crate::ids::PhoneNumberId>,
    /// Numbers whose business-initiated messages of some categories wait for the person's
    /// allowed local hours (a tenant's quiet hours).
    pub quiet_hours: Vec<(crate::ids::PhoneNumberId, crate::quiet_hours::QuietHours)>,
    /// Sender pools by index (a send may name one instead of a number).
    pub pools: Vec<Vec<crate::ids::PhoneNumberId>>,
    /// Consent topics the operator names (at most five) besides marketing, utility and
    /// authentication.
    pub topics: Vec<String>,
    /// Whether wagate may raise a tier by itself when its projection comes due (after the
    /// profile's delay, on the exact 7-day count). Off, only Meta's word raises a tier.
    pub apply_projected_upgrades: bool,
}

impl EngineConfig {
    pub fn new(profile: Profile) -> EngineConfig {
        EngineConfig {
            profile,
            shards: 1,
            marketing_cap_per_day: 2,
            schedule_horizon_secs: 60,
            keywords: ConsentKeywords::default(),
            number_keywords: Vec::new(),
            automations: Vec::new(),
            consent_per_number: Vec::new(),
            quiet_hours: Vec::new(),
            pools: Vec::new(),
            topics: Vec::new(),
            apply_projected_upgrades: false,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.shards) {
            return Err(ConfigError::Shards(self.shards));
        }
        if self.marketing_cap_per_day > MarketingCap::MAX {
            return Err(ConfigError::MarketingCap(self.marketing_cap_per_day));
        }
        if self.schedule_horizon_secs == 0 {
            return Err(ConfigError::Horizon);
        }
        self.keywords.validate()?;
        crate::topics::TopicNames::new(&self.topics)?;
        for tenant in &self.number_keywords {
            tenant.keywords.validate()?;
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::new(Profile::whatsapp_2021())
    }
}
