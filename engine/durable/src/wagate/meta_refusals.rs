//! Meta's synchronous refusals as Meta's word. A send Meta refuses with a code that speaks of
//! more than the message changes that state at once, as the same news in a webhook would:
//! - the person: 131049 (WhatsApp's marketing limit for them: a cool-down), 131050 (they
//!   stopped marketing), 131026 (unreachable until they write), 130403 (the business blocked
//!   them: nothing more from this number until it unblocks them), applied on their shard;
//! - the number: 368 (blocked for policy violations) and 131048 (spam rate limit) restrict it
//!   for the profile's restriction period: business-initiated sends, queued ones included, wait;
//!   replies inside the window go on;
//! - the template: 132015 pauses it and 132016 disables it, whatever wagate's tables say;
//!   sends of it queued behind are held (decided again at release, they are refused).
//!
//! The refused message itself fails for good like any permanent refusal (`hand_over`).

use std::sync::Arc;

use serde::Deserialize;

use super::admin::{write_numbers, write_template};
use crate::hand_over::MetaRefusal;
use crate::workers::{DeliveryFailed, PoolTeller};
use wagate_rules::clock::Clock;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::registry::{RegistryError, StatusFrom};
use wagate_rules::shard_context::Core;
use wagate_rules::template::status::TemplateStatus;
use wagate_store::{Store, StoreError};

/// What applying a refusal's news needs: the registry, the store, the clock, the shards.
pub(super) struct RefusalNews {
    pub(super) core: Arc<Core>,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) shards: PoolTeller,
}

/// Why a refusal's news could not be applied.
#[derive(Debug, thiserror::Error)]
enum NewsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the refused send names no template")]
    NoTemplate,
}

/// The template a send's body names (Meta's shape: `template.name`, `template.language.code`).
#[derive(Deserialize)]
struct TemplateBody {
    template: TemplateName,
}

#[derive(Deserialize)]
struct TemplateName {
    name: String,
    language: Language,
}

#[derive(Deserialize)]
struct Language {
    code: String,
}

impl RefusalNews {
    pub(super) fn apply(&self, refusals: Vec<MetaRefusal>) {
        let mut persons = Vec::new();
        for refusal in refusals {
            let applied = match refusal.code {
                131_049 | 131_050 | 131_026 | 130_403 => {
                    persons.push(DeliveryFailed {
                        number: refusal.number,
                        person: refusal.to,
                        code: refusal.code,
                    });
                    Ok(())
                }
                368 | 131_048 => self.restrict(refusal.number, refusal.code),
                132_015 => self.template(&refusal, TemplateStatus::Paused),
                132_016 => self.template(&refusal, TemplateStatus::Disabled),
                _ => Ok(()),
            };
            if let Err(error) = applied {
                tracing::error!(
                    number = refusal.number.0,
                    code = refusal.code,
                    %error,
                    "Meta's refusal could not be applied to wagate's state"
                );
            }
        }
        if !persons.is_empty() && !self.shards.tell(persons) {
            tracing::warn!("Meta refused sends while wagate was stopping: their recipients' state is unchanged");
        }
    }

    fn restrict(&self, number: PhoneNumberId, code: u32) -> Result<(), NewsError> {
        let registry = &self.core.registry;
        let until = registry.restrict_number(number, self.clock.now().secs())?;
        let state = registry
            .number(number)
            .ok_or(RegistryError::UnknownNumber(number))?;
        write_numbers(self.store.as_ref(), &[state])?;
        tracing::warn!(
            number = number.0,
            code,
            restricted_until = until,
            "Meta refused a send for the number's conduct: business-initiated sends wait until the restriction ends"
        );
        Ok(())
    }

    fn template(&self, refusal: &MetaRefusal, status: TemplateStatus) -> Result<(), NewsError> {
        let body: TemplateBody =
            serde_json::from_slice(&refusal.payload).map_err(|_| NewsError::NoTemplate)?;
        let (name, language) = (body.template.name, body.template.language.code);
        let registry = &self.core.registry;
        let account = registry
            .number(refusal.number)
            .ok_or(RegistryError::UnknownNumber(refusal.number))?
            .account;
        let now = self.clock.now().secs();
        registry.change_template_status(
            account,
            &name,
            &language,
            status,
            StatusFrom::Meta,
            now,
        )?;
        let template = registry.require_template(account, &name, &language)?;
        write_template(self.store.as_ref(), &template)?;
        tracing::warn!(
            number = refusal.number.0,
            code = refusal.code,
            template = %name,
            %language,
            status = status.name(),
            "Meta refused a send for its template: the template's status is now Meta's"
        );
        Ok(())
    }
}
