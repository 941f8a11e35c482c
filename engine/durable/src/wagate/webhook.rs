//! Webhook events applied to the durable engine, each once.
//!
//! Meta retries webhooks for days, so repeats are normal. Every event with an identity (an
//! inbound message's wamid, a failed status's wamid) is remembered in the idempotency family
//! under number 0 once applied, until the retention passes; a repeat is then skipped. Other
//! statuses need no such record: a message's delivery state only moves forward, so a repeat
//! finds it there already and changes nothing (two of the five keys a status wrote and read
//! before). A failed status keeps its record because its effects on the person's contact are
//! counted. Statuses find their message through the upstream-id index written when it was
//! sent.

use std::collections::HashSet;

use super::SubmitError;
use super::Wagate;
use crate::early_status::{DeliveryState, EarlyPricing, Recorded, StatusWrites};
use crate::groups::GroupApplied;
use crate::idempotency::{IdempotencyRecord, StoredOutcome};
use crate::message::Delivery;
use crate::sent_record;
use crate::volume_tiers::MetaVolumeTier;
use crate::workers::{FreeEntryUntil, SendFailed};
use wagate_cloud_api::webhooks::events::{
    DeliveryStatus, GroupRecipient, StatusPricing, WebhookEvent,
};
use wagate_rules::clock::Timestamp;
use wagate_rules::contact_events::{Automated, ConsentChange, FailureEffect, InboundEffect};
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId};
use wagate_rules::quality::Quality;
use wagate_store::keys::idempotency_key;
use wagate_store::{Batch, Family, StoreError};

/// What applying one webhook POST did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WebhookReport {
    pub applied: usize,
    /// Events seen before (Meta's retries): not applied again.
    pub repeats: usize,
    /// Events wagate does not act on, or that name something it does not know.
    pub ignored: usize,
    pub failure_effects: Vec<FailureEffect>,
    /// People whose message (a keyword or button) opted them out of everything, applied now
    /// (a repeat of Meta's is not): the number, the person, and their message's wamid.
    pub opted_out: Vec<(PhoneNumberId, Msisdn, String)>,
    /// People whose message (applied now, changing no consent) set keyword automations going
    /// on their shard: the number, the person, their message's wamid, and the automations
    /// (those the loop bound let go, and how many it held).
    pub answered: Vec<(PhoneNumberId, Msisdn, String, Automated)>,
    /// Statuses that moved a message now (a repeat or a stale one does not), listed only when
    /// some number's automations follow statuses (the list costs a copy per status).
    pub moved: Vec<MovedStatus>,
}

/// A status that moved one of wagate's messages: the number, the person, Meta's id of the
/// message and where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedStatus {
    pub number: PhoneNumberId,
    pub person: Msisdn,
    pub wamid: String,
    pub status: DeliveryStatus,
}

fn identity(event: &WebhookEvent) -> Option<String> {
    match event {
        WebhookEvent::Inbound { wamid, .. } if !wamid.is_empty() => {
            Some(format!("webhook:in:{wamid}"))
        }
        WebhookEvent::Status {
            wamid,
            status: DeliveryStatus::Failed,
            ..
        } if !wamid.is_empty() => Some(format!("webhook:status:{wamid}:Failed")),
        _ => None,
    }
}

/// What one event of a POST came to, as the report counts it.
enum EventOutcome {
    Applied,
    /// Already applied: a retry of Meta's, or a status its message is in already.
    Repeat,
    /// Nothing to apply it to, or nothing it changes.
    Ignored,
}

impl From<bool> for EventOutcome {
    fn from(applied: bool) -> EventOutcome {
        if applied {
            EventOutcome::Applied
        } else {
            EventOutcome::Ignored
        }
    }
}

impl Wagate {
    /// wagate's id of the message the upstream knows as `upstream_id` (a wamid).
    pub fn message_id_of(&self, upstream_id: &str) -> Result<Option<u64>, SubmitError> {
        Ok(sent_record::message_id(self.store.as_ref(), upstream_id)?)
    }

    /// Whether the event with `identity` was applied before (within the retention).
    pub(crate) fn seen(&self, identity: &str) -> Result<bool, SubmitError> {
        let now = self.clock.now().unix_secs();
        Ok(self
            .store
            .get(Family::Idempotency, &idempotency_key(0, identity))?
            .and_then(|bytes| IdempotencyRecord::decode(&bytes))
            .is_some_and(|record| record.expires_at > now))
    }

    /// Remembers that the event with `identity` was applied. Written after applying it: a stop
    /// in between applies it again on Meta's retry (every effect here tolerates that), where
    /// remembering first would lose it.
    pub(crate) fn remember(&self, identity: &str) -> Result<(), SubmitError> {
        let mut batch = Batch::default();
        self.remember_into(identity, &mut batch);
        self.store.write(&batch, true)?;
        Ok(())
    }

    /// Adds the record that remembers `identity` to `batch` (to be written with other work).
    pub(crate) fn remember_into(&self, identity: &str, batch: &mut Batch) {
        let (key, value) = self.remembered(identity);
        batch.put(Family::Idempotency, key, value);
    }

    /// The key and value (in [`Family::Idempotency`]) that remember `identity`.
    fn remembered(&self, identity: &str) -> (Vec<u8>, Vec<u8>) {
        let record = IdempotencyRecord {
            expires_at: self.clock.now().unix_secs() + self.retention_secs(),
            body_hash: 0,
            outcome: StoredOutcome::Refused {
                code: None,
                name: "webhook_applied".into(),
                reason: String::new(),
            },
        };
        (idempotency_key(0, identity), record.encode())
    }

    /// Writes the statuses gathered, then has the shards take back the sends whose delivery
    /// failed (their recipients' slots; the price went back with the statuses).
    fn flush_statuses(&self, statuses: StatusWrites) -> Result<(), SubmitError> {
        let failed = statuses.flush(self.store.as_ref())?;
        if !failed.is_empty() {
            self.pool
                .submit(failed.into_iter().map(SendFailed).collect())?;
        }
        Ok(())
    }

    /// Moves the delivery state of the message Meta knows as `wamid` (in `writes`). A status
    /// for a wamid not yet written down (Meta was faster than its own answer) is parked until
    /// the message is settled.
    fn record_delivery(
        &self,
        writes: &mut StatusWrites,
        wamid: &str,
        status: DeliveryStatus,
        error: u32,
    ) -> Result<Recorded, SubmitError> {
        let delivery = match status {
            DeliveryStatus::Sent => Delivery::Sent,
            DeliveryStatus::Delivered => Delivery::Delivered,
            DeliveryStatus::Read | DeliveryStatus::Played => Delivery::Read,
            DeliveryStatus::Failed => Delivery::Failed,
        };
        let next = DeliveryState { delivery, error };
        let expires_at = self.clock.now().unix_secs() + self.retention_secs();
        Ok(writes.record(self.store.as_ref(), wamid, next, expires_at)?)
    }

    /// Meta's pricing in a status, booked against wagate's estimate (in `writes`).
    fn reconcile_status(
        &self,
        writes: &mut StatusWrites,
        number: PhoneNumberId,
        to: Option<Msisdn>,
        wamid: &str,
        pricing: &StatusPricing,
    ) -> Result<bool, SubmitError> {
        let now = self.clock.now();
        let early = EarlyPricing {
            number,
            to,
            at: now,
            expires_at: now.unix_secs() + self.retention_secs(),
            volume: self.registry().number(number).map(|n| n.volume.clone()),
        };
        Ok(writes.reconcile(self.store.as_ref(), wamid, pricing, early)?)
    }

    /// `phone_number_quality_update`: flags, tier changes and throughput upgrades of the number
    /// registered with that display number. False when it is not known or nothing applies.
    fn number_news(&self, display: &str, event: &str, current_limit: Option<&str>) -> bool {
        let Some(number) = Msisdn::parse(display)
            .ok()
            .and_then(|d| self.registry().number_by_display(d))
        else {
            return false;
        };
        let id = number.id;
        match event {
            "FLAGGED" => self.set_number_quality(id, Quality::Red).is_ok(),
            "UNFLAGGED" => self.set_number_quality(id, Quality::Green).is_ok(),
            "UPGRADE" | "DOWNGRADE" => {
                current_limit.is_some_and(|tier| self.set_tier(id, tier).is_ok())
            }
            "THROUGHPUT_UPGRADE" => {
                let max = self.registry().profile().pacing.max_throughput_mps;
                self.set_throughput(id, max).is_ok()
            }
            _ => false,
        }
    }

    /// `phone_number_name_update`: Meta's decision on the display name of the number
    /// registered with that display number. False when it is not known or the decision is not.
    fn name_news(&self, display: &str, decision: &str) -> bool {
        let number = Msisdn::parse(display)
            .ok()
            .and_then(|d| self.registry().number_by_display(d));
        match (number, wagate_rules::number::NameStatus::parse(decision)) {
            (Some(number), Some(status)) => self.set_name_status(number.id, status).is_ok(),
            _ => false,
        }
    }

    /// `business_capability_update`: the limit Meta set for the account's business applies
    /// to the scopes of the account's numbers (under `whatsapp-2025`, their portfolio's shared
    /// scope). Meta grants the step from 250 to 2K itself, after business verification or
    /// 2,000 unique template deliveries in 30 days and its review: wagate takes its word.
    /// False when the account has no numbers here or the profile has no such tier.
    fn capability_news(&self, account: AccountId, limit: &str) -> bool {
        let mut applied = false;
        for id in self.account_numbers(account) {
            applied |= self.set_tier(id, limit).is_ok();
        }
        applied
    }

    /// The numbers registered for `account`.
    fn account_numbers(&self, account: AccountId) -> Vec<PhoneNumberId> {
        self.registry()
            .numbers()
            .into_iter()
            .filter(|n| n.account == account)
            .map(|n| n.id)
            .collect()
    }

    /// `VOLUME_BASED_PRICING_TIER_UPDATE`: Meta's monthly volume tier of the account's
    /// portfolio in a market, applied to its counts and kept for a restart.
    fn volume_tier_news(
        &self,
        account: AccountId,
        category: &str,
        region: &str,
        tier: &str,
        month: &str,
    ) -> Result<bool, SubmitError> {
        let registry = self.registry();
        let Some(portfolio) = registry.portfolio_of_account(account) else {
            return Ok(false);
        };
        let Some(tier) = MetaVolumeTier::read(portfolio, category, region, tier, month) else {
            return Ok(false);
        };
        tier.keep(self.store.as_ref())
            .map_err(SubmitError::Unavailable)?;
        let applied = tier.apply(registry, self.clock.now());
        tracing::info!(
            account = account.0,
            category,
            region,
            from = tier.from,
            to = tier.to,
            applied,
            "Meta named the portfolio's volume tier"
        );
        Ok(applied)
    }

    /// `account_update`: a restriction of business-initiated messaging or a disabled account
    /// restricts every number of the account; a reinstatement lifts it.
    fn account_news(&self, account: AccountId, event: &str, detail: &str) -> bool {
        let restrict = match (event, detail) {
            ("ACCOUNT_RESTRICTION", d) if d.contains("RESTRICTED_BIZ_INITIATED_MESSAGING") => true,
            ("DISABLED_UPDATE", "DISABLE") => true,
            ("DISABLED_UPDATE", "REINSTATE") => false,
            _ => return false,
        };
        let mut applied = false;
        for id in self.account_numbers(account) {
            applied |= if restrict {
                self.restrict_number(id).is_ok()
            } else {
                self.lift_restriction(id).is_ok()
            };
        }
        applied
    }

    /// Applies the events of one webhook POST (already authenticated), each once. POSTs
    /// applied meanwhile by other callers wait and go together in the next group: their
    /// statuses in one synced write.
    pub fn apply_webhook(&self, events: Vec<WebhookEvent>) -> Result<WebhookReport, SubmitError> {
        self.webhooks
            .run(events, |posts| self.apply_posts(posts))
            .unwrap_or_else(|| {
                Err(SubmitError::Unavailable(StoreError::Io(
                    "a webhook group stopped before answering".into(),
                )))
            })
    }

    /// Applies a group of POSTs in order, every status of the group in one synced write; a
    /// failure (the store's) answers every POST of the group with it, and Meta retries them.
    fn apply_posts(
        &self,
        posts: Vec<Vec<WebhookEvent>>,
    ) -> Vec<Result<WebhookReport, SubmitError>> {
        let count = posts.len();
        let mut statuses = StatusWrites::new(self.registry().profile().rate_cards.clone());
        let mut remembered_here: HashSet<String> = HashSet::new();
        let applied = posts
            .into_iter()
            .map(|events| self.apply_events(events, &mut statuses, &mut remembered_here))
            .collect::<Result<Vec<WebhookReport>, SubmitError>>()
            .and_then(|reports| {
                self.flush_statuses(statuses)?;
                Ok(reports)
            });
        match applied {
            Ok(reports) => reports.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error); count],
        }
    }

    /// Applies the events of one POST, each once, adding statuses and their dedupe records to
    /// `statuses`; any other event first writes the statuses before it, keeping the order.
    fn apply_events(
        &self,
        events: Vec<WebhookEvent>,
        statuses: &mut StatusWrites,
        remembered_here: &mut HashSet<String>,
    ) -> Result<WebhookReport, SubmitError> {
        let mut report = WebhookReport::default();
        for event in events {
            let identity = identity(&event);
            if let Some(identity) = &identity {
                if remembered_here.contains(identity) || self.seen(identity)? {
                    report.repeats += 1;
                    continue;
                }
            }
            let is_status = matches!(event, WebhookEvent::Status { .. });
            // Statuses come per message: a parked or unknown one is not an operator's matter.
            let kind = (!is_status).then(|| event.kind());
            if !is_status {
                let cards = self.registry().profile().rate_cards.clone();
                self.flush_statuses(std::mem::replace(statuses, StatusWrites::new(cards)))?;
                remembered_here.clear();
            }
            let outcome = match event {
                WebhookEvent::Inbound { message, wamid } => {
                    let (number, person) = (message.number, message.from);
                    let effect = self.inbound(message)?;
                    let applied = effect.is_ok();
                    match effect {
                        Ok(InboundEffect {
                            consent: Some(ConsentChange::OptOut),
                            ..
                        }) => report.opted_out.push((number, person, wamid)),
                        Ok(InboundEffect { automations, .. })
                            if !automations.fired.is_empty() || automations.held > 0 =>
                        {
                            report.answered.push((number, person, wamid, automations));
                        }
                        _ => {}
                    }
                    applied.into()
                }
                WebhookEvent::UserPreference {
                    number,
                    person,
                    change,
                } => self
                    .consent(
                        number,
                        person,
                        change,
                        wagate_rules::state::contact::ConsentSource::UserPreferences,
                    )?
                    .is_ok()
                    .into(),
                WebhookEvent::GroupInbound {
                    group, at, wamid, ..
                } => self.groups.inbound(&group, at, &wamid)?.into(),
                WebhookEvent::GroupChange {
                    number,
                    field,
                    item,
                } => match self.groups.apply(number, &field, &item)? {
                    GroupApplied::Applied => EventOutcome::Applied,
                    GroupApplied::Repeat => EventOutcome::Repeat,
                    GroupApplied::Ignored => EventOutcome::Ignored,
                },
                WebhookEvent::Status {
                    group:
                        Some(GroupRecipient {
                            participant: Some(participant),
                            ..
                        }),
                    wamid,
                    status,
                    pricing,
                    number,
                    ..
                } => {
                    // One participant's status of a group message: kept per participant; the
                    // message moves with the furthest of them, and one participant's failure
                    // is not the message's.
                    let moved = self.groups.participant_status(
                        statuses,
                        &wamid,
                        &participant,
                        status.name(),
                    )?;
                    let mut recorded = Recorded::Behind;
                    if status != DeliveryStatus::Failed {
                        recorded = self.record_delivery(statuses, &wamid, status, 0)?;
                    }
                    let mut fed = false;
                    if let Some(pricing) = &pricing {
                        fed |= self.reconcile_status(statuses, number, None, &wamid, pricing)?;
                    }
                    match recorded {
                        _ if moved || fed => EventOutcome::Applied,
                        Recorded::Moved => EventOutcome::Applied,
                        _ => EventOutcome::Repeat,
                    }
                }
                WebhookEvent::Status {
                    number,
                    wamid,
                    status,
                    recipient,
                    errors,
                    pricing,
                    free_entry_until,
                    ..
                } => {
                    let error = errors.first().copied().unwrap_or(0);
                    let recorded = self.record_delivery(statuses, &wamid, status, error)?;
                    let mut fed = false;
                    if let (Some(until), Some(person)) = (free_entry_until, recipient) {
                        // Meta's word on the person's free entry point window.
                        let until =
                            Timestamp::checked_from_unix_secs(until).unwrap_or(Timestamp::LATEST);
                        fed |= self
                            .pool
                            .ask(FreeEntryUntil {
                                number,
                                person,
                                until,
                            })?
                            .is_ok();
                    }
                    if let Some(pricing) = &pricing {
                        fed |=
                            self.reconcile_status(statuses, number, recipient, &wamid, pricing)?;
                    }
                    if let (DeliveryStatus::Failed, Some(person)) = (status, recipient) {
                        for code in errors {
                            if let Ok(effect) = self.delivery_failed(number, person, code)? {
                                report.failure_effects.push(effect);
                                fed = true;
                            }
                        }
                    }
                    if let (Recorded::Moved, Some(person)) = (recorded, recipient) {
                        if self.pool.core().automations.follows_statuses() {
                            report.moved.push(MovedStatus {
                                number,
                                person,
                                wamid,
                                status,
                            });
                        }
                    }
                    // Parked (not applied yet, and never if wagate did not send it) counts
                    // as ignored.
                    match recorded {
                        Recorded::Moved => EventOutcome::Applied,
                        _ if fed => EventOutcome::Applied,
                        Recorded::AlreadyThere => EventOutcome::Repeat,
                        Recorded::Behind | Recorded::Parked => EventOutcome::Ignored,
                    }
                }
                WebhookEvent::TemplateStatus {
                    account,
                    name,
                    language,
                    status,
                    meta_id,
                    ..
                } => {
                    if let Some(meta_id) = meta_id {
                        // Meta's id, so that calls on `/{template_id}` find the template.
                        self.note_template_meta_id(account, &name, &language, meta_id);
                    }
                    self.change_template_status(
                        account,
                        &name,
                        &language,
                        status,
                        wagate_rules::registry::StatusFrom::Meta,
                    )
                    .is_ok()
                    .into()
                }
                WebhookEvent::TemplateQuality {
                    account,
                    name,
                    language,
                    quality,
                } => self
                    .set_template_quality(account, &name, &language, quality)
                    .is_ok()
                    .into(),
                WebhookEvent::TemplateCategory {
                    account,
                    name,
                    language,
                    category,
                } => self
                    .set_template_category(account, &name, &language, category)
                    .is_ok()
                    .into(),
                WebhookEvent::NameDecision {
                    display_phone_number,
                    decision,
                } => self.name_news(&display_phone_number, &decision).into(),
                WebhookEvent::TemplateComponents {
                    account,
                    name,
                    language,
                    body,
                    footer,
                } => self
                    .set_template_text(account, &name, &language, body, footer)
                    .is_ok()
                    .into(),
                WebhookEvent::NumberQuality {
                    display_phone_number,
                    event,
                    current_limit,
                } => self
                    .number_news(&display_phone_number, &event, current_limit.as_deref())
                    .into(),
                WebhookEvent::AccountUpdate {
                    account,
                    event,
                    detail,
                } => self.account_news(account, &event, &detail).into(),
                WebhookEvent::CapabilityUpdate { account, limit } => {
                    self.capability_news(account, &limit).into()
                }
                WebhookEvent::VolumeTier {
                    account,
                    category,
                    region,
                    tier,
                    effective_month,
                } => self
                    .volume_tier_news(account, &category, &region, &tier, &effective_month)?
                    .into(),
                WebhookEvent::Ignored { .. } => EventOutcome::Ignored,
            };
            match identity {
                Some(identity) if is_status => {
                    let (key, value) = self.remembered(&identity);
                    statuses.put(Family::Idempotency, &key, &value);
                    remembered_here.insert(identity);
                }
                Some(identity) => self.remember(&identity)?,
                None => {}
            }
            match outcome {
                EventOutcome::Applied => report.applied += 1,
                EventOutcome::Repeat => report.repeats += 1,
                EventOutcome::Ignored => {
                    // Never dropped in silence: Meta's word that wagate could not apply is
                    // what an operator must see (a status of a template wagate does not
                    // know, an event it does not understand).
                    if let Some(kind) = &kind {
                        tracing::warn!(event = %kind, "a Meta webhook event was not applied");
                    }
                    report.ignored += 1;
                }
            }
        }
        Ok(report)
    }
}
