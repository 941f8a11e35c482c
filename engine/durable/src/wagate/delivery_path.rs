//! How far a number's scope is along the profile's delivery path (`whatsapp-2025`: 2,000
//! unique recipients of delivered templates outside service windows within 30 days), read
//! from the records `template_deliveries` keeps.

use std::sync::Arc;

use super::Wagate;
use crate::template_deliveries::unique_recipients;
use wagate_rules::clock::SECS_PER_DAY;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::usage::DeliveryPathProgress;
use wagate_store::StoreError;

impl Wagate {
    /// How far `number`'s scope is along the profile's delivery path; `None` when the profile
    /// has none or the scope is already at (or past) the tier it leads to.
    pub(crate) fn delivery_path_progress(
        &self,
        number: PhoneNumberId,
    ) -> Result<Option<DeliveryPathProgress>, StoreError> {
        let registry = self.registry();
        let profile = registry.profile();
        let (Some(path), Some(tier)) = (
            &profile.upgrade.delivery_path,
            profile.upgrade.verification_tier,
        ) else {
            return Ok(None);
        };
        let Some(state) = registry.number(number) else {
            return Ok(None);
        };
        if state.scope.tier() >= tier {
            return Ok(None);
        }
        let numbers: Vec<PhoneNumberId> = registry
            .numbers()
            .into_iter()
            .filter(|n| Arc::ptr_eq(&n.scope, &state.scope))
            .map(|n| n.id)
            .collect();
        let window = u64::from(path.days) * u64::from(SECS_PER_DAY);
        let since = self.clock.now().unix_secs().saturating_sub(window);
        Ok(Some(DeliveryPathProgress {
            tier: profile.tiers[tier].name.clone(),
            unique_recipients: unique_recipients(self.store.as_ref(), &numbers, since)?,
            threshold: path.unique_recipients,
            days: path.days,
        }))
    }
}
