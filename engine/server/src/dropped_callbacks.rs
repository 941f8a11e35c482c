//! wagate's own status callbacks: a send wagate accepted into its queue and dropped later (the
//! rules refused it when its turn came: an opt-out since, a template withdrawn) goes to the
//! tenant's callback as a `statuses` webhook in Meta's shape, status `failed`, with the code and
//! reason wagate would have answered then, so the tenant's existing webhook code takes it as it
//! takes Meta's failures. It travels the durable forward queue (signed, retried, kept across
//! restarts, sent once: its identity is the message's id) like Meta's own webhooks.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::config::TenantConfig;
use super::forward::{Forward, Forwarder};
use wagate_cloud_api::error::ApiError;
use wagate_durable::{DroppedSend, SubmitError};
use wagate_rules::ids::message_id_text;
use wagate_rules::registry::Registry;

pub(crate) struct DroppedCallbacks {
    forwarder: Arc<Forwarder>,
    /// Number to the tenant that owns it, for tenants with a callback.
    owners: HashMap<u64, String>,
}

/// The webhook telling that `dropped` will never be sent, as of `at` (Unix seconds).
pub(crate) fn failed_status(dropped: &DroppedSend, account: u64, at: u64) -> Value {
    let error = ApiError::from(&dropped.refusal);
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": account.to_string(), "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "phone_number_id": dropped.number.0.to_string() },
            "statuses": [{
                "id": message_id_text(dropped.message_id),
                "status": "failed",
                "timestamp": at.to_string(),
                "recipient_id": dropped.to.digits().to_string(),
                "errors": [{
                    "code": error.code,
                    "title": error.title,
                    "message": error.title,
                    "error_data": { "details": error.details },
                }],
                "wagate_reason": error.reason,
            }]
        }}]}]
    })
}

impl DroppedCallbacks {
    pub(crate) fn new(forwarder: Arc<Forwarder>, tenants: &[TenantConfig]) -> DroppedCallbacks {
        let owners = tenants
            .iter()
            .filter(|tenant| tenant.callback_url.is_some())
            .flat_map(|tenant| tenant.numbers.iter().map(|n| (*n, tenant.name.clone())))
            .collect();
        DroppedCallbacks { forwarder, owners }
    }

    /// Queues a callback for each dropped send whose tenant has a callback; returns how many.
    pub(crate) fn tell(
        &self,
        dropped: &[DroppedSend],
        registry: &Registry,
        at: u64,
    ) -> Result<usize, SubmitError> {
        let forwards: Vec<Forward> = dropped
            .iter()
            .filter_map(|send| {
                let tenant = self.owners.get(&send.number.0)?;
                let account = registry.number(send.number).map_or(0, |n| n.account.0);
                Some(Forward {
                    tenant: tenant.clone(),
                    body: failed_status(send, account, at).to_string().into_bytes(),
                    identity: format!("wagate:dropped:{}", send.message_id),
                })
            })
            .collect();
        if forwards.is_empty() {
            return Ok(0);
        }
        self.forwarder.enqueue(forwards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::ids::{Msisdn, PhoneNumberId};
    use wagate_rules::Refusal;

    #[test]
    fn a_dropped_send_reads_as_metas_failed_status_with_wagates_reason() {
        let dropped = DroppedSend {
            message_id: 7,
            number: PhoneNumberId(1001),
            to: Msisdn::parse("+16505550001").unwrap(),
            refusal: Refusal::OptedOut,
        };
        let body = failed_status(&dropped, 1, 1_767_225_600);
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], message_id_text(7));
        assert_eq!(status["status"], "failed");
        assert_eq!(status["recipient_id"], "16505550001");
        assert_eq!(status["errors"][0]["code"], 470_001);
        assert_eq!(status["wagate_reason"], "opted_out");
        let parsed = wagate_cloud_api::webhooks::events::parse_webhook(body.to_string().as_bytes());
        assert!(parsed.is_ok(), "Meta's shape, read by wagate's own parser");
    }
}
