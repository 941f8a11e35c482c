//! Webhook events applied to the durable engine, each once.
//!
//! Meta retries webhooks for days, so repeats are normal. Every event with an identity (an
//! inbound message's wamid, a status's wamid and state) is claimed through the idempotency
//! family under number 0 before it is applied, and the claim expires with the retention.

use super::idempotency::{IdempotencyRecord, StoredOutcome};
use super::wagate::Wagate;
use super::SubmitError;
use crate::events::FailureEffect;
use crate::store::keys::idempotency_key;
use crate::store::{Batch, Family};
use crate::webhooks::events::{DeliveryStatus, WebhookEvent};

/// What applying one webhook POST did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WebhookReport {
    pub applied: usize,
    /// Events seen before (Meta's retries): not applied again.
    pub repeats: usize,
    /// Events wagate does not act on, or that name something it does not know.
    pub ignored: usize,
    pub failure_effects: Vec<FailureEffect>,
}

fn identity(event: &WebhookEvent) -> Option<String> {
    match event {
        WebhookEvent::Inbound { wamid, .. } if !wamid.is_empty() => {
            Some(format!("webhook:in:{wamid}"))
        }
        WebhookEvent::Status { wamid, status, .. } if !wamid.is_empty() => {
            Some(format!("webhook:status:{wamid}:{status:?}"))
        }
        _ => None,
    }
}

impl Wagate {
    /// Whether the event with `identity` was applied before; records it if not.
    fn first_time(&self, identity: &str) -> Result<bool, SubmitError> {
        let key = idempotency_key(0, identity);
        let now = self.clock.now().unix_secs();
        if let Some(bytes) = self.store.get(Family::Idempotency, &key)? {
            if IdempotencyRecord::decode(&bytes).is_some_and(|r| r.expires_at > now) {
                return Ok(false);
            }
        }
        let record = IdempotencyRecord {
            expires_at: now + self.retention_secs(),
            body_hash: 0,
            outcome: StoredOutcome::Refused {
                code: None,
                name: "webhook_applied".into(),
                reason: String::new(),
            },
        };
        let mut batch = Batch::default();
        batch.put(Family::Idempotency, key, record.encode());
        self.store.write(&batch, true)?;
        Ok(true)
    }

    /// Applies the events of one webhook POST (already authenticated), each once.
    pub fn apply_webhook(&self, events: Vec<WebhookEvent>) -> Result<WebhookReport, SubmitError> {
        let mut report = WebhookReport::default();
        for event in events {
            if let Some(identity) = identity(&event) {
                if !self.first_time(&identity)? {
                    report.repeats += 1;
                    continue;
                }
            }
            let applied = match event {
                WebhookEvent::Inbound { message, .. } => self.inbound(message)?.is_ok(),
                WebhookEvent::UserPreference {
                    number,
                    person,
                    change,
                } => self
                    .consent(
                        number,
                        person,
                        change,
                        crate::state::contact::ConsentSource::UserPreferences,
                    )?
                    .is_ok(),
                WebhookEvent::Status {
                    number,
                    status: DeliveryStatus::Failed,
                    recipient: Some(person),
                    errors,
                    ..
                } => {
                    for code in errors {
                        if let Ok(effect) = self.delivery_failed(number, person, code)? {
                            report.failure_effects.push(effect);
                        }
                    }
                    true
                }
                WebhookEvent::TemplateStatus {
                    account,
                    name,
                    language,
                    status,
                    ..
                } => self
                    .set_template_status(account, &name, &language, status)
                    .is_ok(),
                WebhookEvent::TemplateQuality {
                    account,
                    name,
                    language,
                    quality,
                } => self
                    .set_template_quality(account, &name, &language, quality)
                    .is_ok(),
                // Delivery progress without a failure changes no rule yet; numbers are not
                // registered by display number yet (the server's admin API will map them).
                WebhookEvent::Status { .. }
                | WebhookEvent::NumberQuality { .. }
                | WebhookEvent::AccountUpdate { .. }
                | WebhookEvent::Ignored { .. } => false,
            };
            if applied {
                report.applied += 1;
            } else {
                report.ignored += 1;
            }
        }
        Ok(report)
    }
}
