//! The shared registries: numbers, portfolios and templates, looked up by every shard.
//!
//! Registrations and status changes are rare and go through `DashMap`s; shards keep their own
//! caches of the `Arc`s and drop them when [`Registry::generation`] moves, so the hot path reads
//! one atomic rather than a shared map.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::clock::Secs;
use crate::hash::MixBuildHasher;
use crate::ids::{AccountId, Msisdn, PhoneNumberId, PortfolioId};
use crate::number::{NameStatus, NumberSnapshot, NumberState, Shared};
use crate::profile::{LimitScopeKind, Profile};
use crate::quality::Quality;
use crate::registered_template::{template_key_hash, LifecycleSnapshot, Template, TransitionError};
use crate::scope::{LimitScope, ScopeSnapshot, PORTFOLIO_SCOPE_BIT};
use crate::template::lint::{lint, LintFinding};
use crate::template::model::{Category, TemplateDefinition};
use crate::template::status::TemplateStatus;
use crate::topics::{TopicError, TopicNames};
use crate::volume::VolumeCounts;

/// Who says a template's status: an operator asks (the profile's transitions apply), Meta
/// reports a fact (applied whatever the table lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFrom {
    Operator,
    Meta,
}

/// A template's name and language as Meta accepts them: names of lowercase letters, digits and
/// underscores (at most 512), language codes such as `en` or `en_US`.
fn check_template_identity(name: &str, language: &str) -> Result<(), RegistryError> {
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(RegistryError::BadTemplateName(name.to_string()));
    }
    let (lang, region) = language.split_once('_').unwrap_or((language, ""));
    let language_ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty() || language.len() > lang.len() + 1)
        && region.len() <= 4
        && region.bytes().all(|b| b.is_ascii_alphanumeric());
    if !language_ok {
        return Err(RegistryError::BadTemplateLanguage(language.to_string()));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("phone number id {0:?} is already registered")]
    AlreadyRegistered(PhoneNumberId),
    #[error("phone number id {0:?} is not registered")]
    UnknownNumber(PhoneNumberId),
    #[error("portfolio {0:?} has no registered number")]
    UnknownPortfolio(PortfolioId),
    #[error("template '{name}' ({language}) does not exist")]
    UnknownTemplate { name: String, language: String },
    #[error("tier '{0}' is not in this profile's ladder")]
    UnknownTier(String),
    #[error("throughput {got} messages/s is outside 1..={max}")]
    ThroughputOutOfRange { got: u32, max: u32 },
    #[error("this profile has no verification path to a higher tier")]
    NoVerificationPath,
    #[error(
        "template name '{0}': Meta's names are 1 to 512 lowercase letters, digits and underscores"
    )]
    BadTemplateName(String),
    #[error("template language '{0}': a language code such as en or en_US")]
    BadTemplateLanguage(String),
    #[error("too many numbers: the registry holds at most {0}")]
    TooManyNumbers(u32),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Topic(#[from] TopicError),
}

/// What registering a number needs.
#[derive(Debug, Clone)]
pub struct NumberRegistration {
    pub id: PhoneNumberId,
    pub account: AccountId,
    pub portfolio: PortfolioId,
    /// A tier name from the profile's ladder; the profile's initial tier when `None`.
    pub tier: Option<String>,
    /// Messages per second; the profile's default when `None`.
    pub throughput_mps: Option<u32>,
    /// The number as people see it: Meta's number-level webhooks name it only this way.
    pub display_phone_number: Option<Msisdn>,
}

#[derive(Debug)]
pub struct Registry {
    profile: Arc<Profile>,
    shards: usize,
    // Read on every send's path: keyed by integers wagate's operator assigned, so the cheap
    // mix stands in for SipHash.
    numbers: DashMap<PhoneNumberId, Arc<NumberState>, MixBuildHasher>,
    /// Display numbers (digits) to ids, for Meta's `phone_number_quality_update`.
    by_display: DashMap<u64, PhoneNumberId, MixBuildHasher>,
    /// Each business's (account's) numbers that share its consent, by contact-table scope:
    /// consent belongs to the business, so a person's records with all of them carry the same
    /// consent (numbers whose consent is per number are left out).
    business_numbers: DashMap<AccountId, Arc<[u32]>, MixBuildHasher>,
    /// Every number of each business, per-number consent or not: Meta's marketing stop is the
    /// business's whatever the scope.
    every_business_number: DashMap<AccountId, Arc<[u32]>, MixBuildHasher>,
    /// Numbers whose people's consent is their own (a tenant chose per-number scope). Set once,
    /// before any number (an atomic load to read, where a `DashSet` would lock).
    consent_per_number:
        std::sync::OnceLock<std::collections::HashSet<PhoneNumberId, MixBuildHasher>>,
    /// The operator's consent topics.
    topic_names: std::sync::OnceLock<TopicNames>,
    /// Sender pools, by index: the numbers a send addressed to the pool may go from.
    pools: std::sync::OnceLock<Vec<Arc<[PhoneNumberId]>>>,
    portfolios: DashMap<PortfolioId, Arc<LimitScope>, MixBuildHasher>,
    /// Each portfolio's monthly utility and authentication volume, per market.
    volumes: DashMap<PortfolioId, Arc<VolumeCounts>, MixBuildHasher>,
    templates: DashMap<u64, Vec<Arc<Template>>, MixBuildHasher>,
    next_index: AtomicU32,
    next_portfolio_index: AtomicU32,
    generation: AtomicU64,
    /// Raised by any limit scope that changed (see [`Registry::take_scopes_dirty`]).
    scopes_dirty: Arc<AtomicBool>,
}
impl Registry {
    pub fn new(profile: Arc<Profile>, shards: usize) -> Registry {
        Registry {
            profile,
            shards,
            numbers: DashMap::default(),
            by_display: DashMap::default(),
            business_numbers: DashMap::default(),
            consent_per_number: std::sync::OnceLock::new(),
            every_business_number: DashMap::default(),
            topic_names: std::sync::OnceLock::new(),
            pools: std::sync::OnceLock::new(),
            portfolios: DashMap::default(),
            volumes: DashMap::default(),
            templates: DashMap::default(),
            next_index: AtomicU32::new(0),
            next_portfolio_index: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            scopes_dirty: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Moves whenever an `Arc` a shard may have cached is replaced.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn tier_index(&self, name: &str) -> Result<usize, RegistryError> {
        self.profile
            .tiers
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| RegistryError::UnknownTier(name.to_string()))
    }

    fn check_throughput(&self, mps: u32) -> Result<u32, RegistryError> {
        let max = self.profile.pacing.max_throughput_mps;
        if mps == 0 || mps > max {
            return Err(RegistryError::ThroughputOutOfRange { got: mps, max });
        }
        Ok(mps)
    }

    pub fn register_number(
        &self,
        registration: NumberRegistration,
    ) -> Result<Arc<NumberState>, RegistryError> {
        let tier = match &registration.tier {
            Some(name) => Some(self.tier_index(name)?),
            None => None,
        };
        let throughput = self.check_throughput(
            registration
                .throughput_mps
                .unwrap_or(self.profile.pacing.throughput_mps),
        )?;
        let entry = match self.numbers.entry(registration.id) {
            dashmap::Entry::Occupied(_) => {
                return Err(RegistryError::AlreadyRegistered(registration.id))
            }
            dashmap::Entry::Vacant(vacant) => vacant,
        };
        let index = self.next_index.fetch_add(1, Ordering::AcqRel);
        if index >= PORTFOLIO_SCOPE_BIT {
            return Err(RegistryError::TooManyNumbers(PORTFOLIO_SCOPE_BIT));
        }
        let initial = tier.unwrap_or(self.profile.initial_tier);
        let scope = self.scope_for(index, registration.portfolio, initial);
        if let (Some(tier), LimitScopeKind::Portfolio) = (tier, self.profile.limit_scope) {
            scope.set_tier(tier, 0);
        }
        let display = registration.display_phone_number.map_or(0, Msisdn::digits);
        self.add_business_number(registration.account, index, registration.id);
        let number = Arc::new(NumberState::new(
            registration.id,
            index,
            registration.account,
            registration.portfolio,
            Shared {
                scope,
                volume: self.volume_of(registration.portfolio),
            },
            throughput,
            display,
        ));
        entry.insert(number.clone());
        if display != 0 {
            self.by_display.insert(display, registration.id);
        }
        self.bump();
        Ok(number)
    }

    /// The limit scope of a new number: its own, or its portfolio's (created on first use).
    fn scope_for(&self, index: u32, portfolio: PortfolioId, tier: usize) -> Arc<LimitScope> {
        match self.profile.limit_scope {
            LimitScopeKind::Number => Arc::new(LimitScope::watched(
                index,
                tier,
                self.shards,
                self.scopes_dirty.clone(),
            )),
            LimitScopeKind::Portfolio => self
                .portfolios
                .entry(portfolio)
                .or_insert_with(|| {
                    let key = PORTFOLIO_SCOPE_BIT
                        | self.next_portfolio_index.fetch_add(1, Ordering::AcqRel);
                    Arc::new(LimitScope::watched(
                        key,
                        tier,
                        self.shards,
                        self.scopes_dirty.clone(),
                    ))
                })
                .clone(),
        }
    }

    /// The portfolio's volume counts (made on first use, sized for the profile's markets).
    pub fn volume_of(&self, portfolio: PortfolioId) -> Arc<VolumeCounts> {
        self.volumes
            .entry(portfolio)
            .or_insert_with(|| Arc::new(VolumeCounts::new(self.profile.rate_cards.market_count())))
            .clone()
    }

    /// The portfolio of a business (account) with a registered number.
    pub fn portfolio_of_account(&self, account: AccountId) -> Option<PortfolioId> {
        self.numbers
            .iter()
            .find(|number| number.account == account)
            .map(|number| number.portfolio)
    }

    /// Whether any limit scope changed since the last call (then look with `take_dirty`).
    pub fn take_scopes_dirty(&self) -> bool {
        self.scopes_dirty.swap(false, Ordering::AcqRel)
    }

    /// Every limit scope with the portfolio it belongs to (`None` for a number's own scope).
    pub fn scopes(&self) -> Vec<(Option<PortfolioId>, Arc<LimitScope>)> {
        match self.profile.limit_scope {
            LimitScopeKind::Number => self
                .numbers()
                .into_iter()
                .map(|n| (None, n.scope.clone()))
                .collect(),
            LimitScopeKind::Portfolio => self
                .portfolios
                .iter()
                .map(|p| (Some(*p.key()), p.value().clone()))
                .collect(),
        }
    }

    /// Restores a portfolio's scope under the key it was persisted with (before its numbers).
    pub fn restore_portfolio(&self, portfolio: PortfolioId, key: u32, snapshot: &ScopeSnapshot) {
        let scope = Arc::new(LimitScope::watched(
            key,
            snapshot.tier,
            self.shards,
            self.scopes_dirty.clone(),
        ));
        scope.restore(snapshot);
        self.portfolios.insert(portfolio, scope);
        self.next_portfolio_index
            .fetch_max((key & !PORTFOLIO_SCOPE_BIT) + 1, Ordering::AcqRel);
        self.bump();
    }

    /// Restores a number under its persisted index; `scope` is its own scope's snapshot when
    /// the limit is per number.
    pub fn restore_number(
        &self,
        number: &NumberSnapshot,
        scope: Option<&ScopeSnapshot>,
    ) -> Arc<NumberState> {
        let limit_scope = self.scope_for(number.index, number.portfolio, self.profile.initial_tier);
        if let (Some(snapshot), LimitScopeKind::Number) = (scope, self.profile.limit_scope) {
            limit_scope.restore(snapshot);
        }
        self.add_business_number(number.account, number.index, number.id);
        let state = Arc::new(NumberState::new(
            number.id,
            number.index,
            number.account,
            number.portfolio,
            Shared {
                scope: limit_scope,
                volume: self.volume_of(number.portfolio),
            },
            number.throughput_mps,
            number.display,
        ));
        if number.display != 0 {
            self.by_display.insert(number.display, number.id);
        }
        state.store_quality(number.quality);
        state.store_name_status(number.name_status);
        state.restrict_until(number.restricted_until);
        self.numbers.insert(number.id, state.clone());
        self.next_index
            .fetch_max(number.index + 1, Ordering::AcqRel);
        self.bump();
        state
    }

    /// Restores a template as persisted.
    pub fn restore_template(&self, definition: TemplateDefinition, lifecycle: &LifecycleSnapshot) {
        let template = Arc::new(Template::restored(definition, lifecycle));
        let mut bucket = self.templates.entry(template.key_hash).or_default();
        let definition = &template.definition;
        bucket.retain(|t| !t.is(definition.account.0, &definition.name, &definition.language));
        bucket.push(template.clone());
        drop(bucket);
        self.bump();
    }

    /// Every template (for persistence and listings).
    pub fn templates(&self) -> Vec<Arc<Template>> {
        self.templates
            .iter()
            .flat_map(|b| b.value().clone())
            .collect()
    }

    /// Makes the consent of `numbers`' people their own, not their business's (before the
    /// numbers are registered or restored).
    /// Names the operator's consent topics (before any template); only the first call counts.
    pub fn name_topics(&self, names: TopicNames) {
        let _ = self.topic_names.set(names);
    }

    /// The consent topics' names.
    pub fn topic_names(&self) -> &TopicNames {
        static BUILT_IN: std::sync::OnceLock<TopicNames> = std::sync::OnceLock::new();
        self.topic_names
            .get()
            .unwrap_or_else(|| BUILT_IN.get_or_init(TopicNames::default))
    }

    /// Only the first call counts.
    pub fn keep_consent_per_number(&self, numbers: impl IntoIterator<Item = PhoneNumberId>) {
        let _ = self.consent_per_number.set(numbers.into_iter().collect());
    }

    /// Keeps the sender pools (once, at start), each by its index in `pools`.
    pub fn keep_pools(&self, pools: &[Vec<PhoneNumberId>]) {
        let _ = self.pools.set(
            pools
                .iter()
                .map(|numbers| Arc::from(numbers.as_slice()))
                .collect(),
        );
    }

    /// The numbers of pool `index`.
    pub fn pool(&self, index: u16) -> Option<Arc<[PhoneNumberId]>> {
        self.pools.get()?.get(usize::from(index)).cloned()
    }

    /// Whether the consent of `id`'s people is its own (its tenant chose per-number scope).
    pub fn consent_is_per_number(&self, id: PhoneNumberId) -> bool {
        self.consent_per_number
            .get()
            .is_some_and(|numbers| numbers.contains(&id))
    }

    fn add_business_number(&self, account: AccountId, index: u32, id: PhoneNumberId) {
        let add = |lists: &DashMap<AccountId, Arc<[u32]>, MixBuildHasher>| {
            let mut entry = lists.entry(account).or_insert_with(|| Arc::from([]));
            if !entry.contains(&index) {
                let mut all = entry.to_vec();
                all.push(index);
                all.sort_unstable();
                *entry = all.into();
            }
        };
        add(&self.every_business_number);
        if !self.consent_is_per_number(id) {
            add(&self.business_numbers);
        }
    }

    /// Whether any number keeps its people's consent its own.
    pub fn has_consent_per_number(&self) -> bool {
        self.consent_per_number
            .get()
            .is_some_and(|numbers| !numbers.is_empty())
    }

    /// The contact-table scopes of every number of the business `account`, per-number consent
    /// or not (where Meta's marketing stop goes).
    pub fn every_number_of(&self, account: AccountId) -> Arc<[u32]> {
        self.every_business_number
            .get(&account)
            .map_or_else(|| Arc::from([]), |numbers| numbers.clone())
    }

    /// The contact-table scopes of the numbers a person's consent with `number` is shared
    /// with: every number of its business, or none when its consent is per number.
    pub fn consent_sharers(&self, number: &NumberState) -> Arc<[u32]> {
        if self.consent_is_per_number(number.id) {
            return Arc::from([]);
        }
        self.business_numbers
            .get(&number.account)
            .map_or_else(|| Arc::from([]), |numbers| numbers.clone())
    }

    #[inline]
    pub fn number(&self, id: PhoneNumberId) -> Option<Arc<NumberState>> {
        self.numbers.get(&id).map(|n| n.clone())
    }

    fn require_number(&self, id: PhoneNumberId) -> Result<Arc<NumberState>, RegistryError> {
        self.number(id).ok_or(RegistryError::UnknownNumber(id))
    }

    /// Records the display number Meta says `id` has (its number webhooks name it so); the
    /// number as it now is, to be written.
    pub fn set_display(
        &self,
        id: PhoneNumberId,
        display: Msisdn,
    ) -> Result<Arc<NumberState>, RegistryError> {
        let number = self.require_number(id)?;
        let old = number.display();
        if old != 0 {
            self.by_display.remove_if(&old, |_, owner| *owner == id);
        }
        number.store_display(display.digits());
        self.by_display.insert(display.digits(), id);
        Ok(number)
    }

    /// Records where Meta's review of `id`'s display name stands; the number, to be written.
    pub fn set_name_status(
        &self,
        id: PhoneNumberId,
        status: NameStatus,
    ) -> Result<Arc<NumberState>, RegistryError> {
        let number = self.require_number(id)?;
        number.store_name_status(status);
        Ok(number)
    }

    /// The number whose display number is `display` (as Meta's number webhooks name it).
    pub fn number_by_display(&self, display: Msisdn) -> Option<Arc<NumberState>> {
        let id = *self.by_display.get(&display.digits())?;
        self.number(id)
    }

    pub fn numbers(&self) -> Vec<Arc<NumberState>> {
        let mut all: Vec<_> = self.numbers.iter().map(|n| n.clone()).collect();
        all.sort_by_key(|n| n.index);
        all
    }

    pub fn portfolio(&self, id: PortfolioId) -> Option<Arc<LimitScope>> {
        self.portfolios.get(&id).map(|p| p.clone())
    }

    /// A number's quality rating. Its limit scope takes the worst rating among its numbers.
    pub fn set_number_quality(
        &self,
        id: PhoneNumberId,
        quality: Quality,
        now: Secs,
    ) -> Result<(), RegistryError> {
        let number = self.require_number(id)?;
        number.store_quality(quality);
        let scope_quality = match self.profile.limit_scope {
            LimitScopeKind::Number => quality,
            LimitScopeKind::Portfolio => self
                .numbers
                .iter()
                .filter(|n| n.portfolio == number.portfolio)
                .map(|n| n.quality())
                .max_by_key(|q| match q {
                    Quality::Unknown => 0,
                    Quality::Green => 1,
                    Quality::Yellow => 2,
                    Quality::Red => 3,
                })
                .unwrap_or(quality),
        };
        number.scope.set_quality(&self.profile, scope_quality, now);
        Ok(())
    }

    /// Blocks business-initiated messages from the number for the profile's restriction period.
    pub fn restrict_number(&self, id: PhoneNumberId, now: Secs) -> Result<Secs, RegistryError> {
        let number = self.require_number(id)?;
        let until = now.saturating_add(self.profile.restriction_secs);
        number.restrict_until(until);
        Ok(until)
    }

    pub fn lift_restriction(&self, id: PhoneNumberId) -> Result<(), RegistryError> {
        self.require_number(id)?.restrict_until(0);
        Ok(())
    }

    pub fn set_throughput(&self, id: PhoneNumberId, mps: u32) -> Result<(), RegistryError> {
        let mps = self.check_throughput(mps)?;
        self.require_number(id)?.throughput.set_rate(mps);
        Ok(())
    }

    /// Sets the tier of the number's limit scope by name (operator override, or Meta's word).
    pub fn set_tier(&self, id: PhoneNumberId, tier: &str, now: Secs) -> Result<(), RegistryError> {
        let index = self.tier_index(tier)?;
        let scope = &self.require_number(id)?.scope;
        // What time made due before this word (a downgrade after a long flag) comes first.
        scope.apply_due(&self.profile, now);
        scope.set_tier(index, now);
        Ok(())
    }

    /// Business verification: where the profile has that path, lifts the portfolio's limit to
    /// the verification tier at once.
    pub fn verify_business(&self, portfolio: PortfolioId, now: Secs) -> Result<(), RegistryError> {
        let tier = self
            .profile
            .upgrade
            .verification_tier
            .ok_or(RegistryError::NoVerificationPath)?;
        let scopes: Vec<Arc<LimitScope>> = match self.profile.limit_scope {
            LimitScopeKind::Portfolio => self.portfolio(portfolio).into_iter().collect(),
            LimitScopeKind::Number => self
                .numbers
                .iter()
                .filter(|n| n.portfolio == portfolio)
                .map(|n| n.scope.clone())
                .collect(),
        };
        if scopes.is_empty() {
            return Err(RegistryError::UnknownPortfolio(portfolio));
        }
        for scope in scopes {
            scope.apply_due(&self.profile, now);
            if scope.tier() < tier {
                scope.set_tier(tier, now);
            }
        }
        Ok(())
    }

    /// Submits a template (or an edit of one) for review and returns the lint's predictions.
    /// An edit is allowed only where the profile lets the current status go back to submitted.
    pub fn submit_template(
        &self,
        definition: TemplateDefinition,
        now: Secs,
    ) -> Result<(Arc<Template>, Vec<LintFinding>), RegistryError> {
        check_template_identity(&definition.name, &definition.language)?;
        let mut definition = definition;
        if let Some(topic) = &definition.topic {
            self.topic_names().topic(topic)?;
        } else {
            // Meta knows nothing of wagate's topics: a definition from Meta keeps the one given.
            definition.topic = self
                .template(definition.account, &definition.name, &definition.language)
                .and_then(|known| known.definition.topic.clone());
        }
        let findings = lint(&definition);
        let template = Arc::new(Template::new(definition));
        let mut bucket = self.templates.entry(template.key_hash).or_default();
        let definition = &template.definition;
        let existing = bucket
            .iter()
            .position(|t| t.is(definition.account.0, &definition.name, &definition.language));
        match existing {
            Some(position) => {
                let from = bucket[position].status(&self.profile.templates, now);
                if !self
                    .profile
                    .templates
                    .allows(from, TemplateStatus::Submitted)
                {
                    return Err(TransitionError {
                        from,
                        to: TemplateStatus::Submitted,
                    }
                    .into());
                }
                bucket[position] = template.clone();
            }
            None => bucket.push(template.clone()),
        }
        drop(bucket);
        self.bump();
        Ok((template, findings))
    }

    #[inline]
    pub fn template(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
    ) -> Option<Arc<Template>> {
        let hash = template_key_hash(account.0, name, language);
        self.templates
            .get(&hash)?
            .iter()
            .find(|t| t.is(account.0, name, language))
            .cloned()
    }

    /// The template, or the error naming what is missing.
    pub fn require_template(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
    ) -> Result<Arc<Template>, RegistryError> {
        self.template(account, name, language)
            .ok_or_else(|| RegistryError::UnknownTemplate {
                name: name.to_string(),
                language: language.to_string(),
            })
    }

    /// An operator's status change: only the profile's transitions.
    pub fn set_template_status(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        status: TemplateStatus,
        now: Secs,
    ) -> Result<TemplateStatus, RegistryError> {
        self.change_template_status(account, name, language, status, StatusFrom::Operator, now)
    }

    /// A template's status as `from` says it: an operator's request follows the profile's
    /// transitions ([`Template::transition`]), Meta's word is applied as it is
    /// ([`Template::apply_reported`]).
    pub fn change_template_status(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        status: TemplateStatus,
        from: StatusFrom,
        now: Secs,
    ) -> Result<TemplateStatus, RegistryError> {
        let template = self.require_template(account, name, language)?;
        let rules = &self.profile.templates;
        Ok(match from {
            StatusFrom::Operator => template.transition(rules, status, now)?,
            StatusFrom::Meta => template.apply_reported(rules, status, now),
        })
    }

    /// Meta recategorised the template (`template_category_update`): its price and the rules
    /// for its category apply from now on; its status and history are kept. The template as
    /// it now is.
    pub fn set_template_category(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        category: Category,
    ) -> Result<Arc<Template>, RegistryError> {
        self.redefine_template(account, name, language, |definition| {
            definition.category = category;
        })
    }

    /// The template Meta knows by `meta_id`, if wagate learned that id.
    pub fn template_by_meta_id(&self, meta_id: u64) -> Option<Arc<Template>> {
        self.templates.iter().find_map(|bucket| {
            bucket
                .iter()
                .find(|t| t.definition.meta_id == Some(meta_id))
                .cloned()
        })
    }

    /// Changes a template's definition in place, its lifecycle (status, quality, history) kept.
    pub fn redefine_template(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        change: impl FnOnce(&mut TemplateDefinition),
    ) -> Result<Arc<Template>, RegistryError> {
        let unknown = || RegistryError::UnknownTemplate {
            name: name.to_string(),
            language: language.to_string(),
        };
        let hash = template_key_hash(account.0, name, language);
        let mut bucket = self.templates.get_mut(&hash).ok_or_else(unknown)?;
        let slot = bucket
            .iter_mut()
            .find(|t| t.is(account.0, name, language))
            .ok_or_else(unknown)?;
        let mut definition = slot.definition.clone();
        change(&mut definition);
        let redefined = Arc::new(Template::restored(definition, &slot.snapshot()));
        *slot = redefined.clone();
        drop(bucket);
        self.bump();
        Ok(redefined)
    }

    pub fn set_template_quality(
        &self,
        account: AccountId,
        name: &str,
        language: &str,
        quality: Quality,
        now: Secs,
    ) -> Result<TemplateStatus, RegistryError> {
        let template = self.require_template(account, name, language)?;
        Ok(template.quality_changed(&self.profile.templates, quality, now))
    }
}
