//! Policy profiles: WhatsApp's rules as data.
//!
//! A profile says where the unique-recipient limit lives, the tier ladder and how to climb it,
//! how template quality is punished, the pacing defaults and the rate card. Two ship embedded
//! (`whatsapp-2021`, the default, and `whatsapp-2025`); a provider may load its own TOML.
//! Nothing else in the core branches on a profile's name.

use crate::groups::GroupRules;
use crate::price::PricingSpec;
use crate::rate_cards::{RateCardError, RateCards};
use serde::Deserialize;

use crate::quality::Quality;
use crate::template::status::TemplateStatus;

pub const WHATSAPP_2021: &str = include_str!("../profiles/whatsapp-2021.toml");
pub const WHATSAPP_2025: &str = include_str!("../profiles/whatsapp-2025.toml");

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile is not valid TOML for a policy profile: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("no embedded profile is called '{0}' (known: whatsapp-2021, whatsapp-2025)")]
    Unknown(String),
    #[error("profile '{profile}': {problem}")]
    Invalid { profile: String, problem: String },
    #[error(transparent)]
    RateCard(#[from] RateCardError),
}

/// Which entity owns the unique-recipient limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScopeKind {
    Number,
    Portfolio,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub name: String,
    /// Unique recipients per rolling 24 h; absent means unlimited.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRule {
    pub threshold_numerator: u32,
    pub threshold_denominator: u32,
    /// Qualities under which an upgrade may be earned.
    pub qualities: Vec<Quality>,
    pub delay_secs: u32,
    /// The tier that business verification grants at once, if the profile has that path.
    #[serde(default)]
    pub verification_tier: Option<usize>,
    /// The lowest tier from which usage earns upgrades (below it only verification does).
    #[serde(default)]
    pub usage_from_tier: usize,
    /// The other way to the verification tier, if the profile has one: enough unique
    /// recipients of delivered business-initiated (template) messages, then Meta's review.
    #[serde(default)]
    pub delivery_path: Option<DeliveryPath>,
}

/// Meta grants the verification tier, after its review, to a business that delivered
/// business-initiated messages to `unique_recipients` people within `days`. wagate counts
/// them and reports how far along a scope is; the grant itself arrives as a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPath {
    pub unique_recipients: u32,
    /// At most [`DELIVERY_PATH_MAX_DAYS`]: how long wagate remembers a delivery.
    pub days: u32,
    /// How long wagate assumes Meta's review takes once the count is reached, for its
    /// projections (the campaign plan); Meta publishes no figure, and its grant decides.
    #[serde(default = "one_day")]
    pub review_secs: u32,
}

fn one_day() -> u32 {
    86_400
}

/// How many days of deliveries wagate keeps for a delivery path.
pub const DELIVERY_PATH_MAX_DAYS: u32 = 31;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DowngradeRule {
    /// How long a number may stay flagged before it loses a tier.
    pub flagged_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacingRules {
    pub throughput_mps: u32,
    pub max_throughput_mps: u32,
    pub pair_interval_secs: u32,
    pub pair_burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedQualityAction {
    Flag,
    Pause,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRulesSpec {
    on_red_quality: RedQualityAction,
    flag_recovery_secs: u32,
    pause_secs: Vec<u32>,
    transitions: Vec<String>,
}

/// Template rules after validation, with the transition table as a matrix.
#[derive(Debug, Clone)]
pub struct TemplateRules {
    pub on_red_quality: RedQualityAction,
    pub flag_recovery_secs: u32,
    /// Pause lengths in order; one pause more than listed disables the template.
    pub pause_secs: Vec<u32>,
    allowed: [[bool; TemplateStatus::ALL.len()]; TemplateStatus::ALL.len()],
}

impl TemplateRules {
    pub fn allows(&self, from: TemplateStatus, to: TemplateStatus) -> bool {
        self.allowed[from as usize][to as usize]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    limit_scope: LimitScopeKind,
    service_window_secs: u32,
    max_text_chars: u32,
    restriction_secs: u32,
    initial_tier: usize,
    tiers: Vec<TierSpec>,
    upgrade: UpgradeRule,
    #[serde(default)]
    downgrade: Option<DowngradeRule>,
    pacing: PacingRules,
    templates: TemplateRulesSpec,
    groups: GroupRules,
    /// A profile file may carry its own prices for all time; otherwise its rate cards do.
    #[serde(default)]
    pricing: Option<PricingSpec>,
}

/// A validated policy profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub limit_scope: LimitScopeKind,
    pub service_window_secs: u32,
    pub max_text_chars: u32,
    pub restriction_secs: u32,
    pub initial_tier: usize,
    pub tiers: Vec<TierSpec>,
    pub upgrade: UpgradeRule,
    pub downgrade: Option<DowngradeRule>,
    pub pacing: PacingRules,
    pub templates: TemplateRules,
    /// Groups: their size, joining, what they take, their window and pricing.
    pub groups: GroupRules,
    /// Its prices, by effective date (`rate_cards`).
    pub rate_cards: RateCards,
}

impl Profile {
    pub fn whatsapp_2021() -> Profile {
        Self::parse(WHATSAPP_2021).expect("embedded whatsapp-2021 profile is valid")
    }

    pub fn whatsapp_2025() -> Profile {
        Self::parse(WHATSAPP_2025).expect("embedded whatsapp-2025 profile is valid")
    }

    /// One of the embedded profiles by name.
    pub fn embedded(name: &str) -> Result<Profile, ProfileError> {
        match name {
            "whatsapp-2021" => Self::parse(WHATSAPP_2021),
            "whatsapp-2025" => Self::parse(WHATSAPP_2025),
            other => Err(ProfileError::Unknown(other.to_string())),
        }
    }

    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let spec: ProfileSpec = toml::from_str(text)?;
        let invalid = |problem: String| ProfileError::Invalid {
            profile: spec.name.clone(),
            problem,
        };
        if spec.tiers.is_empty() {
            return Err(invalid("at least one tier is needed".into()));
        }
        if spec.initial_tier >= spec.tiers.len() {
            return Err(invalid("initial_tier is past the last tier".into()));
        }
        let ascending = spec
            .tiers
            .windows(2)
            .all(|w| w[0].limit.unwrap_or(u32::MAX) < w[1].limit.unwrap_or(u32::MAX));
        if !ascending {
            return Err(invalid(
                "tier limits must rise strictly, unlimited last".into(),
            ));
        }
        if spec.upgrade.threshold_denominator == 0 {
            return Err(invalid("upgrade threshold_denominator is 0".into()));
        }
        if let Some(tier) = spec.upgrade.verification_tier {
            if tier >= spec.tiers.len() {
                return Err(invalid("verification_tier is past the last tier".into()));
            }
        }
        if let Some(path) = &spec.upgrade.delivery_path {
            if spec.upgrade.verification_tier.is_none() {
                return Err(invalid(
                    "a delivery_path leads to the verification_tier, which is not set".into(),
                ));
            }
            if path.unique_recipients == 0 || path.days == 0 || path.days > DELIVERY_PATH_MAX_DAYS {
                return Err(invalid(format!(
                    "delivery_path needs unique_recipients >= 1 and days 1..={DELIVERY_PATH_MAX_DAYS}"
                )));
            }
        }
        let pacing = &spec.pacing;
        if pacing.throughput_mps == 0 || pacing.throughput_mps > pacing.max_throughput_mps {
            return Err(invalid(
                "throughput_mps must be 1..=max_throughput_mps".into(),
            ));
        }
        if pacing.pair_interval_secs == 0 || pacing.pair_burst == 0 {
            return Err(invalid(
                "pair pacing needs an interval and a burst of 1 or more".into(),
            ));
        }
        if spec.service_window_secs == 0 {
            return Err(invalid("service_window_secs is 0".into()));
        }
        let rate_cards = match &spec.pricing {
            Some(pricing) => {
                pricing.validate().map_err(invalid)?;
                RateCards::single(pricing)
            }
            None => RateCards::embedded(&spec.name)?,
        };
        let templates = parse_template_rules(&spec.templates).map_err(invalid)?;
        spec.groups.validate().map_err(invalid)?;
        Ok(Profile {
            name: spec.name,
            limit_scope: spec.limit_scope,
            service_window_secs: spec.service_window_secs,
            max_text_chars: spec.max_text_chars,
            restriction_secs: spec.restriction_secs,
            initial_tier: spec.initial_tier,
            tiers: spec.tiers,
            upgrade: spec.upgrade,
            downgrade: spec.downgrade,
            pacing: spec.pacing,
            templates,
            groups: spec.groups,
            rate_cards,
        })
    }

    /// The limit of tier `index`, `None` when unlimited.
    pub fn tier_limit(&self, index: usize) -> Option<u32> {
        self.tiers.get(index).and_then(|t| t.limit)
    }

    /// Unique recipients over 7 days that earn the next tier from tier `index`.
    pub fn upgrade_threshold(&self, index: usize) -> Option<u64> {
        if index + 1 >= self.tiers.len() || index < self.upgrade.usage_from_tier {
            return None;
        }
        let limit = u64::from(self.tier_limit(index)?);
        let rule = &self.upgrade;
        Some(
            (limit * u64::from(rule.threshold_numerator))
                .div_ceil(u64::from(rule.threshold_denominator)),
        )
    }
}

fn parse_template_rules(spec: &TemplateRulesSpec) -> Result<TemplateRules, String> {
    let mut allowed = [[false; TemplateStatus::ALL.len()]; TemplateStatus::ALL.len()];
    for line in &spec.transitions {
        let (from, to) = line
            .split_once("->")
            .ok_or_else(|| format!("transition '{line}' is not 'from -> to'"))?;
        let parse = |name: &str| {
            TemplateStatus::parse(name).ok_or_else(|| format!("unknown template status '{name}'"))
        };
        allowed[parse(from)? as usize][parse(to)? as usize] = true;
    }
    match spec.on_red_quality {
        RedQualityAction::Flag => {
            if !allowed[TemplateStatus::Approved as usize][TemplateStatus::Flagged as usize] {
                return Err("on_red_quality = flag needs 'approved -> flagged'".into());
            }
        }
        RedQualityAction::Pause => {
            if !allowed[TemplateStatus::Approved as usize][TemplateStatus::Paused as usize] {
                return Err("on_red_quality = pause needs 'approved -> paused'".into());
            }
        }
    }
    Ok(TemplateRules {
        on_red_quality: spec.on_red_quality,
        flag_recovery_secs: spec.flag_recovery_secs,
        pause_secs: spec.pause_secs.clone(),
        allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::GroupRefusal;
    use crate::template::model::Category;

    #[test]
    fn embedded_profiles_parse() {
        let old = Profile::whatsapp_2021();
        assert_eq!(old.limit_scope, LimitScopeKind::Number);
        assert_eq!(old.tier_limit(0), Some(1_000));
        assert_eq!(old.upgrade_threshold(0), Some(2_000));
        assert_eq!(old.upgrade_threshold(2), None);
        let new = Profile::whatsapp_2025();
        assert_eq!(new.limit_scope, LimitScopeKind::Portfolio);
        assert_eq!(new.tier_limit(4), None);
        assert_eq!(new.upgrade_threshold(1), Some(1_000));
        assert_eq!(
            new.upgrade_threshold(0),
            None,
            "250 -> 2K is by verification"
        );
        assert!(new
            .templates
            .allows(TemplateStatus::Approved, TemplateStatus::Paused));
        assert!(!new
            .templates
            .allows(TemplateStatus::Approved, TemplateStatus::Flagged));
        assert!(old
            .templates
            .allows(TemplateStatus::Flagged, TemplateStatus::Disabled));
        assert!(old.upgrade.delivery_path.is_none());
        let path = new
            .upgrade
            .delivery_path
            .as_ref()
            .expect("2,000 in 30 days");
        assert_eq!((path.unique_recipients, path.days), (2_000, 30));
    }

    #[test]
    fn bad_profiles_are_refused_with_a_reason() {
        assert!(matches!(
            Profile::embedded("whatsapp-1999"),
            Err(ProfileError::Unknown(_))
        ));
        let broken = WHATSAPP_2021.replace("initial_tier = 0", "initial_tier = 9");
        let error = Profile::parse(&broken).unwrap_err().to_string();
        assert!(error.contains("initial_tier"), "{error}");
        let typo = WHATSAPP_2021.replace("\"approved -> flagged\"", "\"approved -> flaged\"");
        assert!(Profile::parse(&typo)
            .unwrap_err()
            .to_string()
            .contains("flaged"));
        let too_long = WHATSAPP_2025.replace("days = 30", "days = 90");
        let error = Profile::parse(&too_long).unwrap_err().to_string();
        assert!(error.contains("delivery_path"), "{error}");
        let nowhere = WHATSAPP_2025.replace("verification_tier = 1", "");
        let error = Profile::parse(&nowhere).unwrap_err().to_string();
        assert!(error.contains("verification_tier"), "{error}");
        let unknown_key = format!("{WHATSAPP_2021}\nsurprise = 1\n");
        assert!(matches!(
            Profile::parse(&unknown_key),
            Err(ProfileError::Parse(_))
        ));
    }

    #[test]
    fn under_2025_a_group_holds_8_joined_by_link_and_nobody_is_added() {
        let rules = Profile::whatsapp_2025().groups;
        assert_eq!(rules.check_room(7, 1), Ok(()));
        assert_eq!(
            rules.check_room(7, 2),
            Err(GroupRefusal::Full {
                cap: 8,
                participants: 7,
                joining: 2
            })
        );
        assert_eq!(
            rules.check_add(["16505550001"], |_| true),
            Err(GroupRefusal::InviteOnly)
        );
        assert_eq!(rules.check_create(9_999), Ok(()));
        assert!(rules.check_create(10_000).is_err());
    }

    #[test]
    fn under_2021_a_group_holds_1024_and_people_are_added_with_their_opt_in_only() {
        let rules = Profile::whatsapp_2021().groups;
        assert_eq!(rules.check_room(1_000, 24), Ok(()));
        assert!(rules.check_room(1_024, 1).is_err());
        assert_eq!(
            rules.check_add(["16505550001", "16505550002"], |p| p == "16505550001"),
            Err(GroupRefusal::NoGroupOptIn {
                person: "16505550002".into(),
                topic: "groups".into()
            })
        );
        assert_eq!(rules.check_add(["16505550001"], |_| true), Ok(()));
    }

    #[test]
    fn both_profiles_take_text_media_and_text_templates_but_no_interactive_or_authentication() {
        for rules in [
            Profile::whatsapp_2021().groups,
            Profile::whatsapp_2025().groups,
        ] {
            for kind in ["text", "image", "video", "document", "audio", "template"] {
                assert_eq!(rules.check_message_type(kind), Ok(()), "{kind}");
            }
            for kind in ["interactive", "reaction", "location", "contacts"] {
                assert!(rules.check_message_type(kind).is_err(), "{kind}");
            }
            assert_eq!(
                rules.check_template_category(Category::Authentication),
                Err(GroupRefusal::TemplateCategory(Category::Authentication))
            );
            assert_eq!(rules.check_template_category(Category::Marketing), Ok(()));
            assert_eq!(
                rules.pricing_category(Category::Marketing),
                "group_marketing"
            );
            assert_eq!(rules.pricing_category(Category::Service), "group_service");
            assert!(rules.check_text("subject", &"s".repeat(128)).is_ok());
            assert!(rules.check_text("subject", &"s".repeat(129)).is_err());
        }
    }
}
