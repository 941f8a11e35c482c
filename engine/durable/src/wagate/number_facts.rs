//! A number's facts as Meta reports them when asked (`GET /{phone_number_id}`, a business's
//! `phone_numbers`): quality rating (YELLOW included), messaging limit tier, throughput level
//! and display number (which Meta's number webhooks name it by). Meta's word: each that differs from wagate's own state is applied and written, and
//! named in the answer so the caller can log and count it.

use super::admin::write_numbers;
use super::Wagate;
use crate::admin::AdminError;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::number::NameStatus;
use wagate_rules::quality::Quality;

/// What Meta says of a number; `None` for what it did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberFacts {
    pub quality: Option<Quality>,
    /// Meta's tier name (`TIER_250`, `TIER_1K`, ..., `TIER_UNLIMITED`).
    pub tier: Option<String>,
    /// Messages a second Meta's throughput level allows (80 standard, more when high).
    pub throughput_mps: Option<u32>,
    /// The number as people see it (`display_phone_number`).
    pub display: Option<Msisdn>,
    /// Meta's review of its display name (`name_status`).
    pub name_status: Option<NameStatus>,
}

impl Wagate {
    /// Records Meta's word on the review of `id`'s display name, written.
    pub fn set_name_status(&self, id: PhoneNumberId, status: NameStatus) -> Result<(), AdminError> {
        let number = self.registry().set_name_status(id, status)?;
        write_numbers(self.store.as_ref(), &[number])?;
        Ok(())
    }

    /// Applies each of Meta's facts about `id` that differs from wagate's state; the names of
    /// those applied (`quality`, `tier`, `throughput`).
    pub fn apply_number_facts(
        &self,
        id: PhoneNumberId,
        facts: &NumberFacts,
    ) -> Result<Vec<&'static str>, AdminError> {
        let mut applied = Vec::new();
        let Some(number) = self.registry().number(id) else {
            return Ok(applied);
        };
        if let Some(quality) = facts.quality.filter(|q| *q != number.quality()) {
            self.set_number_quality(id, quality)?;
            applied.push("quality");
        }
        if let Some(tier) = &facts.tier {
            let profile = self.registry().profile();
            let current = profile
                .tiers
                .get(number.scope.tier())
                .map(|t| t.name.as_str());
            if !current.is_some_and(|current| current.eq_ignore_ascii_case(tier)) {
                self.set_tier(id, tier)?;
                applied.push("tier");
            }
        }
        if let Some(display) = facts.display.filter(|d| d.digits() != number.display()) {
            let number = self.registry().set_display(id, display)?;
            write_numbers(self.store.as_ref(), &[number])?;
            applied.push("display");
        }
        if let Some(status) = facts.name_status.filter(|s| *s != number.name_status()) {
            self.set_name_status(id, status)?;
            applied.push("name_status");
        }
        let max = self.registry().profile().pacing.max_throughput_mps;
        if let Some(mps) = facts.throughput_mps.map(|mps| mps.min(max)) {
            if mps != number.throughput.messages_per_second() {
                self.set_throughput(id, mps)?;
                applied.push("throughput");
            }
        }
        Ok(applied)
    }
}
