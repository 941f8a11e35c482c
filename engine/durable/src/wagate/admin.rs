//! Operator and webhook changes to numbers, portfolios and templates: applied to the registry
//! and written, synced, before they return.

use std::sync::Arc;

use super::Wagate;
use crate::records::{encode_number, ScopeRecord, TemplateRecord};
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{AccountId, PhoneNumberId, PortfolioId};
use wagate_rules::number::NumberState;
use wagate_rules::quality::Quality;
use wagate_rules::registered_template::Template;
use wagate_rules::registry::{NumberRegistration, RegistryError, StatusFrom};
use wagate_rules::template::lint::LintFinding;
use wagate_rules::template::model::TemplateDefinition;
use wagate_rules::template::status::TemplateStatus;
use wagate_store::keys::{registry_key, registry_kind};
use wagate_store::{Batch, Family, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn template_key(template: &Template) -> Vec<u8> {
    let definition = &template.definition;
    let mut key = registry_key(registry_kind::TEMPLATE, template.key_hash).to_vec();
    key.extend_from_slice(&definition.account.0.to_be_bytes());
    key.extend_from_slice(definition.name.as_bytes());
    key.push(0xff);
    key.extend_from_slice(definition.language.as_bytes());
    key
}

/// Writes the numbers' records and their scopes' records, synced.
pub(super) fn write_numbers(
    store: &dyn Store,
    numbers: &[Arc<NumberState>],
) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    for number in numbers {
        batch.put(
            Family::Registry,
            registry_key(registry_kind::NUMBER, number.id.0),
            encode_number(&number.snapshot()),
        );
        let portfolio = (number.scope.key != number.index).then_some(number.portfolio);
        let record = ScopeRecord {
            key: number.scope.key,
            portfolio,
            snapshot: number.scope.snapshot(),
        };
        batch.put(
            Family::Registry,
            registry_key(registry_kind::SCOPE, u64::from(number.scope.key)),
            record.encode(),
        );
    }
    store.write(&batch, true)
}

/// Writes a template's record (definition and lifecycle), synced.
pub(super) fn write_template(store: &dyn Store, template: &Template) -> Result<(), StoreError> {
    let record = TemplateRecord {
        definition: template.definition.clone(),
        lifecycle: template.snapshot(),
    };
    let mut batch = Batch::default();
    batch.put(Family::Registry, template_key(template), record.encode());
    store.write(&batch, true)
}

impl Wagate {
    fn number_state(&self, id: PhoneNumberId) -> Result<Arc<NumberState>, AdminError> {
        self.registry()
            .number(id)
            .ok_or(AdminError::Registry(RegistryError::UnknownNumber(id)))
    }

    /// Writes the numbers' records and their scopes' records, synced.
    fn persist_numbers(&self, numbers: &[Arc<NumberState>]) -> Result<(), AdminError> {
        Ok(write_numbers(self.store.as_ref(), numbers)?)
    }

    fn persist_template(&self, template: &Template) -> Result<(), AdminError> {
        Ok(write_template(self.store.as_ref(), template)?)
    }

    fn secs(&self) -> u32 {
        self.clock.now().secs()
    }

    pub fn register_number(
        &self,
        registration: NumberRegistration,
    ) -> Result<Arc<NumberState>, AdminError> {
        let number = self.registry().register_number(registration)?;
        self.persist_numbers(std::slice::from_ref(&number))?;
        Ok(number)
    }

    pub fn set_number_quality(
        &self,
        id: PhoneNumberId,
        quality: Quality,
    ) -> Result<(), AdminError> {
        self.registry()
            .set_number_quality(id, quality, self.secs())?;
        self.persist_numbers(&[self.number_state(id)?])
    }

    /// Blocks business-initiated messages for the profile's restriction period.
    pub fn restrict_number(&self, id: PhoneNumberId) -> Result<Timestamp, AdminError> {
        let until = self.registry().restrict_number(id, self.secs())?;
        self.persist_numbers(&[self.number_state(id)?])?;
        Ok(Timestamp::from_secs(until))
    }

    pub fn lift_restriction(&self, id: PhoneNumberId) -> Result<(), AdminError> {
        self.registry().lift_restriction(id)?;
        self.persist_numbers(&[self.number_state(id)?])
    }

    pub fn set_throughput(
        &self,
        id: PhoneNumberId,
        messages_per_second: u32,
    ) -> Result<(), AdminError> {
        self.registry().set_throughput(id, messages_per_second)?;
        self.persist_numbers(&[self.number_state(id)?])
    }

    pub fn set_tier(&self, id: PhoneNumberId, tier: &str) -> Result<(), AdminError> {
        self.registry().set_tier(id, tier, self.secs())?;
        self.persist_numbers(&[self.number_state(id)?])
    }

    pub fn verify_business(&self, portfolio: PortfolioId) -> Result<(), AdminError> {
        self.registry().verify_business(portfolio, self.secs())?;
        let numbers: Vec<_> = self
            .registry()
            .numbers()
            .into_iter()
            .filter(|n| n.portfolio == portfolio)
            .collect();
        self.persist_numbers(&numbers)
    }

    /// Submits a template (or an edit) for review; returns the lint's predictions.
    pub fn submit_template(
        &self,
        definition: TemplateDefinition,
    ) -> Result<Vec<LintFinding>, AdminError> {
        let (template, findings) = self.registry().submit_template(definition, self.secs())?;
        self.persist_template(&template)?;
        Ok(findings)
    }

    /// Applies a template change and persists the template as it now is.
    fn change_template(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        change: impl FnOnce(
            &wagate_rules::registry::Registry,
            u32,
        ) -> Result<TemplateStatus, RegistryError>,
    ) -> Result<TemplateStatus, AdminError> {
        let status = change(self.registry(), self.secs())?;
        let template = self.registry().require_template(account, name, language)?;
        self.persist_template(&template)?;
        Ok(status)
    }

    /// An operator's status change: only the profile's transitions.
    pub fn set_template_status(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        status: TemplateStatus,
    ) -> Result<TemplateStatus, AdminError> {
        self.change_template_status(account, name, language, status, StatusFrom::Operator)
    }

    /// A template's status as `from` says it (see `Registry::change_template_status`), persisted.
    pub fn change_template_status(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        status: TemplateStatus,
        from: StatusFrom,
    ) -> Result<TemplateStatus, AdminError> {
        self.change_template(account, name, language, |registry, now| {
            registry.change_template_status(account, name, language, status, from, now)
        })
    }

    /// Meta recategorised the template: priced and judged as `category` from now on.
    pub fn set_template_category(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        category: wagate_rules::template::model::Category,
    ) -> Result<(), AdminError> {
        let template = self
            .registry()
            .set_template_category(account, name, language, category)?;
        self.persist_template(&template)
    }

    /// Meta's word on a template's text (`message_template_components_update`): its body (and
    /// footer) from now on, so its parameters are counted anew; written, its lifecycle kept.
    pub fn set_template_text(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        body: String,
        footer: Option<String>,
    ) -> Result<(), AdminError> {
        let template =
            self.registry()
                .redefine_template(account, name, language, |definition| {
                    definition.body = body;
                    if footer.is_some() {
                        definition.footer = footer;
                    }
                })?;
        self.persist_template(&template)
    }

    /// [`Wagate::learn_template_meta_id`] where Meta merely mentions the id (a list, a
    /// webhook): a failure is logged, not the caller's to handle (the next mention tries again).
    pub fn note_template_meta_id(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        meta_id: u64,
    ) {
        if let Err(error) = self.learn_template_meta_id(account, name, language, meta_id) {
            tracing::warn!(
                account = account.0,
                template = name,
                language,
                meta_id,
                %error,
                "Meta's id for a template could not be recorded"
            );
        }
    }

    /// Records Meta's id for a template (written); `false` when it was already known.
    pub fn learn_template_meta_id(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        meta_id: u64,
    ) -> Result<bool, AdminError> {
        let known = self
            .registry()
            .template(account, name, language)
            .is_some_and(|t| t.definition.meta_id == Some(meta_id));
        if known {
            return Ok(false);
        }
        let template =
            self.registry()
                .redefine_template(account, name, language, |definition| {
                    definition.meta_id = Some(meta_id);
                })?;
        self.persist_template(&template)?;
        Ok(true)
    }

    pub fn set_template_quality(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        quality: Quality,
    ) -> Result<TemplateStatus, AdminError> {
        self.change_template(account, name, language, |registry, now| {
            registry.set_template_quality(account, name, language, quality, now)
        })
    }
}
