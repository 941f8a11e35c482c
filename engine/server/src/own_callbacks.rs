//! wagate's own status callbacks: what becomes of a send on wagate's side goes to its tenant's
//! callback, signed like Meta's webhooks and through the same durable forward queue (retried,
//! kept across restarts, each once: its identity is the message's id and the event).
//!
//! - A send that will never go (queued and refused by the rules when its turn came: an opt-out
//!   since, its validity over; or refused for good by Meta when it was handed over, which Meta
//!   never tells by webhook) reads as Meta's `statuses` webhook, status `failed`, with the
//!   code and reason wagate would have answered, so the tenant's existing webhook code takes it
//!   as it takes Meta's failures.
//! - A send queued (scheduled, or waiting on the rules) and then released comes under the
//!   field `wagate_statuses` (`queued`, `released`), which Meta-only webhook code passes over.
//!
//! Each piece of news (a queued send's fate, a failure at dispatch, a campaign event) is
//! written by [`TenantNewsCallbacks`] into the very write that records what it tells of
//! (`wagate_durable::tenant_news`): both are kept or neither.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::config::TenantConfig;
use super::forward::{ForwardInbox, Forwarder};
use wagate_cloud_api::error::ApiError;
use wagate_durable::campaigns::CampaignEvent;
use wagate_durable::tenant_news::{News, NewsWriter, QueueFate, QueuedSendFate};
use wagate_durable::DispatchFailure;
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::{message_id_text, Msisdn, PhoneNumberId};
use wagate_rules::registry::Registry;
use wagate_store::Batch;

/// One of wagate's own events for a send, before it is addressed.
pub(crate) struct OwnEvent {
    pub message_id: u64,
    pub number: PhoneNumberId,
    pub to: Msisdn,
    /// `failed`, `queued` or `released`.
    pub status: &'static str,
    /// For `failed`: Meta's or wagate's code, title, words and wagate's reason.
    pub error: Option<ApiError>,
    /// For `queued`: until when, and why.
    pub queued: Option<(u64, &'static str)>,
}

impl OwnEvent {
    /// What a queued send's tenant hears of its fate: `queued` (until when and why),
    /// `released`, or Meta's `failed` with wagate's refusal when it was dropped.
    pub(crate) fn of_fate(fate: &QueuedSendFate) -> OwnEvent {
        let (status, error, queued) = match &fate.fate {
            QueueFate::Queued { until, reason } => {
                ("queued", None, Some((until.unix_secs(), reason.name())))
            }
            QueueFate::Released => ("released", None, None),
            QueueFate::Dropped(refusal) => ("failed", Some(ApiError::from(refusal)), None),
        };
        OwnEvent {
            message_id: fate.message_id,
            number: fate.number,
            to: fate.to,
            status,
            error,
            queued,
        }
    }

    pub(crate) fn dispatch_failed(failure: &DispatchFailure) -> OwnEvent {
        let error = ApiError::new(
            400,
            failure.code.unwrap_or(131_000),
            "Message failed to send",
            failure.reason.clone(),
            "failed_at_dispatch",
        );
        OwnEvent {
            message_id: failure.message_id,
            number: failure.number,
            to: failure.to,
            status: "failed",
            error: Some(error),
            queued: None,
        }
    }
}

/// The webhook telling `event` as of `at` (Unix seconds), for the business `account`.
pub(crate) fn status_webhook(event: &OwnEvent, account: u64, at: u64) -> Value {
    let mut status = json!({
        "id": message_id_text(event.message_id),
        "status": event.status,
        "timestamp": at.to_string(),
        "recipient_id": event.to.digits().to_string(),
    });
    if let Some(error) = &event.error {
        status["errors"] = json!([{
            "code": error.code,
            "title": error.title,
            "message": error.title,
            "error_data": { "details": error.details },
        }]);
        status["wagate_reason"] = json!(error.reason);
    }
    if let Some((until, reason)) = event.queued {
        status["queued_until"] = json!(until);
        status["reason"] = json!(reason);
    }
    // Failures in Meta's own field; wagate's other news where Meta-only code passes over it.
    let field = if event.status == "failed" {
        "messages"
    } else {
        "wagate_statuses"
    };
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": account.to_string(), "changes": [{ "field": field, "value": {
            "messaging_product": "whatsapp",
            "metadata": { "phone_number_id": event.number.0.to_string() },
            "statuses": [status]
        }}]}]
    })
}

/// The webhook telling a campaign's `event` as of `at` (Unix seconds).
pub(crate) fn campaign_webhook(event: &CampaignEvent, account: u64, at: u64) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": account.to_string(), "changes": [{ "field": "wagate_campaigns",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": { "phone_number_id": event.number.to_string() },
                "campaigns": [{
                    "id": event.campaign.to_string(),
                    "event": event.event,
                    "reason": event.reason,
                    "timestamp": at.to_string(),
                }]
            }
        }]}]
    })
}

pub(crate) struct OwnCallbacks {
    forwarder: Arc<Forwarder>,
    /// Number to the tenant that owns it, for tenants with a callback.
    owners: HashMap<u64, String>,
}

impl OwnCallbacks {
    pub(crate) fn new(forwarder: Arc<Forwarder>, tenants: &[TenantConfig]) -> OwnCallbacks {
        let owners = tenants
            .iter()
            .filter(|tenant| tenant.callback_url.is_some())
            .flat_map(|tenant| tenant.numbers.iter().map(|n| (*n, tenant.name.clone())))
            .collect();
        OwnCallbacks { forwarder, owners }
    }

    /// Whether any tenant has a callback (nothing to tell otherwise).
    pub(crate) fn any(&self) -> bool {
        !self.owners.is_empty()
    }

    /// What writes the tenants' news into the writes that record what it tells of, addressed
    /// by the accounts `registry` gives the numbers now.
    pub(crate) fn news_writer(&self, registry: &Registry) -> TenantNewsCallbacks {
        let owners = self
            .owners
            .iter()
            .map(|(number, tenant)| {
                let account = registry
                    .number(PhoneNumberId(*number))
                    .map_or(0, |n| n.account.0);
                (*number, (tenant.clone(), account))
            })
            .collect();
        TenantNewsCallbacks {
            inbox: self.forwarder.inbox(),
            owners,
        }
    }
}

/// Puts wagate's own news for a tenant with a callback into the forward queue, in the same
/// write as what it tells of (`wagate_durable::tenant_news`): a crash keeps both or neither.
pub(crate) struct TenantNewsCallbacks {
    inbox: Arc<ForwardInbox>,
    /// Number to its tenant (with a callback) and its business account.
    owners: HashMap<u64, (String, u64)>,
}

impl NewsWriter for TenantNewsCallbacks {
    fn write(&self, news: News<'_>, batch: &mut Batch) -> usize {
        let (number, body) = match news {
            News::QueuedSend(fate) => (
                fate.number.0,
                Body::Status(OwnEvent::of_fate(fate), fate.at),
            ),
            News::DispatchFailed(failure, at) => (
                failure.number.0,
                Body::Status(OwnEvent::dispatch_failed(failure), at),
            ),
            News::Campaign(event, at) => (event.number, Body::Campaign(event, at)),
        };
        let Some((tenant, account)) = self.owners.get(&number) else {
            return 0;
        };
        let body = match body {
            Body::Status(event, at) => status_webhook(&event, *account, at.unix_secs()),
            Body::Campaign(event, _) if event.tenant != *tenant => return 0,
            Body::Campaign(event, at) => campaign_webhook(event, *account, at.unix_secs()),
        };
        let seq = self.inbox.next_seq();
        let body = body.to_string();
        wagate_durable::forward_queue::put_forward(batch, seq, tenant, body.as_bytes());
        1
    }

    fn committed(&self, count: usize) {
        self.inbox.added(count);
    }
}

/// What one piece of news reads as, before it is addressed.
enum Body<'a> {
    Status(OwnEvent, Timestamp),
    Campaign(&'a CampaignEvent, Timestamp),
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::Refusal;

    #[test]
    fn a_dropped_send_reads_as_metas_failed_status_with_wagates_reason_and_news_apart() {
        let dropped = QueuedSendFate {
            message_id: 7,
            number: PhoneNumberId(1001),
            to: Msisdn::parse("+16505550001").unwrap(),
            at: wagate_rules::clock::Timestamp::from_unix_secs(1_767_225_600),
            fate: QueueFate::Dropped(Refusal::OptedOut),
        };
        let body = status_webhook(&OwnEvent::of_fate(&dropped), 1, 1_767_225_600);
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], message_id_text(7));
        assert_eq!(status["status"], "failed");
        assert_eq!(status["recipient_id"], "16505550001");
        assert_eq!(status["errors"][0]["code"], 470_001);
        assert_eq!(status["wagate_reason"], "opted_out");
        let parsed = wagate_cloud_api::webhooks::events::parse_webhook(body.to_string().as_bytes());
        assert!(parsed.is_ok(), "Meta's shape, read by wagate's own parser");
        let released = QueuedSendFate {
            message_id: 8,
            fate: QueueFate::Released,
            ..dropped
        };
        let body = status_webhook(&OwnEvent::of_fate(&released), 1, 1_767_225_600);
        assert_eq!(body["entry"][0]["changes"][0]["field"], "wagate_statuses");
        assert_eq!(
            body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"],
            "released"
        );
    }
}
