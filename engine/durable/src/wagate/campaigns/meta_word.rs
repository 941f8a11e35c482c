//! Meta's word over a campaign: a restricted number, a quality rating lower than when the
//! campaign went on, or a template Meta paused or disabled pauses it before its next part, and
//! (where the campaign allows) its passing resumes it. What wagate computes never does either.

use wagate_rules::ids::PhoneNumberId;
use wagate_rules::quality::Quality;
use wagate_rules::template::status::TemplateStatus;

use crate::campaigns::record::{Campaign, PauseCause};
use crate::wagate::Wagate;

impl Wagate {
    /// Why Meta's present word stops `campaign` from going on, if it does.
    pub(super) fn meta_stops(&self, campaign: &Campaign) -> Option<PauseCause> {
        let registry = self.registry();
        let number = registry.number(PhoneNumberId(campaign.spec.number))?;
        let now = self.now();
        if number.restricted_until() > now.secs() {
            return Some(PauseCause::NumberRestricted);
        }
        // A number Meta has not rated yet (0) counts as green: a flag is a fall from it.
        let floor = campaign.quality_floor.max(Quality::Green as u8);
        if number.quality() as u8 > floor {
            return Some(PauseCause::QualityDropped);
        }
        let template = registry.template(
            number.account,
            &campaign.spec.template,
            &campaign.spec.language,
        )?;
        match template.status(&registry.profile().templates, now.secs()) {
            TemplateStatus::Paused | TemplateStatus::Disabled => Some(PauseCause::TemplatePaused),
            _ => None,
        }
    }
}
