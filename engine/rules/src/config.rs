//! Engine configuration: the profile plus the sender-side choices the rules leave open.

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
}

/// Keywords and button payloads that change consent when a person sends them. Matching is on
/// the whole message, trimmed and case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentKeywords {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    pub opt_out_payloads: Vec<String>,
    pub marketing_opt_out_payloads: Vec<String>,
    pub opt_in_payloads: Vec<String>,
}

impl Default for ConsentKeywords {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        ConsentKeywords {
            opt_out: list(&[
                "STOP",
                "STOP ALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "СТОП",
                "ОТПИСАТЬСЯ",
            ]),
            opt_in: list(&["START", "SUBSCRIBE", "UNSTOP"]),
            opt_out_payloads: list(&["UNSUBSCRIBE", "STOP"]),
            marketing_opt_out_payloads: list(&["STOP_PROMOS", "STOP_PROMOTIONS"]),
            opt_in_payloads: list(&["SUBSCRIBE", "START"]),
        }
    }
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
    pub keywords: ConsentKeywords,
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
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::new(Profile::whatsapp_2021())
    }
}
