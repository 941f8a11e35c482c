//! wagate's own news of a send (queued, released, failed where Meta never says): the event, the
//! compact record it is kept as in the forward queue, and Meta's status webhook it is written
//! out as when it is delivered.
//!
//! A queued send's news is written with every send queued, in the same write: as the webhook
//! itself (about 450 bytes of JSON) it doubled what a bulk upload wrote to disk; kept as its
//! facts (about 50 bytes) and written out by the forwarder, it costs the disk little and the
//! JSON only at the rate the tenant's callback takes it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use wagate_cloud_api::error::ApiError;
use wagate_durable::tenant_news::{QueueFate, QueuedSendFate};
use wagate_durable::DispatchFailure;
use wagate_rules::ids::{message_id_text, Msisdn, PhoneNumberId};

/// The first byte of a forward kept as a [`StoredStatus`]: never the first byte of a webhook
/// body (JSON), so the two kinds share the queue.
const STORED_STATUS: u8 = 0;

/// One of wagate's own events for a send, before it is addressed: what the forward queue keeps
/// of it, behind the business and the time ([`StoredStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnEvent {
    message_id: u64,
    number: PhoneNumberId,
    to: Msisdn,
    /// `failed`, `queued` or `released`.
    status: Cow<'static, str>,
    /// For `failed`: Meta's or wagate's code, title, words and wagate's reason.
    error: Option<OwnFailure>,
    /// For `queued`: until when, and why.
    queued: Option<(u64, Cow<'static, str>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OwnFailure {
    code: u32,
    title: String,
    details: String,
    reason: String,
}

impl From<ApiError> for OwnFailure {
    fn from(error: ApiError) -> OwnFailure {
        OwnFailure {
            code: error.code,
            title: error.title,
            details: error.details,
            reason: error.reason,
        }
    }
}

impl OwnEvent {
    /// What a queued send's tenant hears of its fate: `queued` (until when and why),
    /// `released`, or Meta's `failed` with wagate's refusal when it was dropped.
    pub(crate) fn of_fate(fate: &QueuedSendFate) -> OwnEvent {
        let (status, error, queued) = match &fate.fate {
            QueueFate::Queued { until, reason } => (
                "queued",
                None,
                Some((until.unix_secs(), Cow::Borrowed(reason.name()))),
            ),
            QueueFate::Released => ("released", None, None),
            QueueFate::Dropped(refusal) => ("failed", Some(ApiError::from(refusal).into()), None),
        };
        OwnEvent {
            message_id: fate.message_id,
            number: fate.number,
            to: fate.to,
            status: Cow::Borrowed(status),
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
            status: Cow::Borrowed("failed"),
            error: Some(error.into()),
            queued: None,
        }
    }
}

/// A send's news as the forward queue keeps it: the event, when, and for which business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredStatus {
    account: u64,
    at: u64,
    event: OwnEvent,
}

impl StoredStatus {
    /// `event` as of `at` (Unix seconds), for the business `account`.
    pub(crate) fn of(event: OwnEvent, account: u64, at: u64) -> StoredStatus {
        StoredStatus { account, at, event }
    }

    /// The record: [`STORED_STATUS`], then the fields (postcard).
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![STORED_STATUS]).expect("a status always serialises")
    }

    /// Meta's status webhook telling it.
    pub(crate) fn webhook(&self) -> String {
        let event = &self.event;
        let status = OwnStatus {
            id: message_id_text(event.message_id),
            status: &event.status,
            timestamp: self.at.to_string(),
            recipient_id: event.to.digits().to_string(),
            errors: event.error.as_ref().map(|error| {
                [OwnError {
                    code: error.code,
                    title: &error.title,
                    message: &error.title,
                    error_data: ErrorData {
                        details: &error.details,
                    },
                }]
            }),
            wagate_reason: event.error.as_ref().map(|error| error.reason.as_str()),
            queued_until: event.queued.as_ref().map(|(until, _)| *until),
            reason: event.queued.as_ref().map(|(_, reason)| reason.as_ref()),
        };
        // Failures in Meta's own field; wagate's other news where Meta-only code passes over it.
        let field = if event.status == "failed" {
            "messages"
        } else {
            "wagate_statuses"
        };
        let webhook = StatusWebhook {
            object: "whatsapp_business_account",
            entry: [StatusEntry {
                id: self.account.to_string(),
                changes: [StatusChange {
                    field,
                    value: StatusValue {
                        messaging_product: "whatsapp",
                        metadata: Metadata {
                            phone_number_id: event.number.0.to_string(),
                        },
                        statuses: [status],
                    },
                }],
            }],
        };
        serde_json::to_string(&webhook).expect("a webhook of strings and numbers always serialises")
    }
}

/// The number and person a kept status is about (`None` for any other body): what erasing the
/// person looks for in the forward queue.
pub(crate) fn about(stored: &[u8]) -> Option<(PhoneNumberId, Msisdn)> {
    match stored.split_first() {
        Some((&STORED_STATUS, fields)) => postcard::from_bytes::<StoredStatus>(fields)
            .ok()
            .map(|status| (status.event.number, status.event.to)),
        _ => None,
    }
}

/// A forward's body as it goes to the tenant: a kept status written out as Meta's webhook,
/// any other body (a webhook of Meta's, a campaign's news) as it was stored. A kept status that
/// does not read (never written by this version) goes as it is, for the tenant to see.
pub(crate) fn body_to_deliver(stored: Vec<u8>) -> Vec<u8> {
    match stored.split_first() {
        Some((&STORED_STATUS, fields)) => match postcard::from_bytes::<StoredStatus>(fields) {
            Ok(status) => status.webhook().into_bytes(),
            Err(error) => {
                tracing::warn!(%error, "a kept status did not read: delivered as it was stored");
                stored
            }
        },
        _ => stored,
    }
}

// Meta's status webhook, written straight from the record (a tree of JSON values built and
// printed for each send queued was a fifth of a bulk upload's CPU with a callback set).
#[derive(serde::Serialize)]
struct StatusWebhook<'a> {
    object: &'static str,
    entry: [StatusEntry<'a>; 1],
}

#[derive(serde::Serialize)]
struct StatusEntry<'a> {
    id: String,
    changes: [StatusChange<'a>; 1],
}

#[derive(serde::Serialize)]
struct StatusChange<'a> {
    field: &'static str,
    value: StatusValue<'a>,
}

#[derive(serde::Serialize)]
struct StatusValue<'a> {
    messaging_product: &'static str,
    metadata: Metadata,
    statuses: [OwnStatus<'a>; 1],
}

#[derive(serde::Serialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(serde::Serialize)]
struct OwnStatus<'a> {
    id: String,
    status: &'a str,
    timestamp: String,
    recipient_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[OwnError<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wagate_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_until: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct OwnError<'a> {
    code: u32,
    title: &'a str,
    message: &'a str,
    error_data: ErrorData<'a>,
}

#[derive(serde::Serialize)]
struct ErrorData<'a> {
    details: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use wagate_rules::{DeferReason, Refusal};

    /// What befell queued send 7, from number 1001 to +16505550001.
    fn fate_of_send_7(fate: QueueFate) -> QueuedSendFate {
        QueuedSendFate {
            message_id: 7,
            number: PhoneNumberId(1001),
            to: Msisdn::parse("+16505550001").unwrap(),
            at: wagate_rules::clock::Timestamp::from_unix_secs(1_767_225_600),
            fate,
        }
    }

    #[test]
    fn a_kept_status_says_whom_it_is_about_and_nothing_else_does() {
        let fate = fate_of_send_7(QueueFate::Released);
        let kept = StoredStatus::of(OwnEvent::of_fate(&fate), 1, 1_767_225_600).encode();
        assert_eq!(about(&kept), Some((fate.number, fate.to)));
        assert_eq!(about(br#"{"object":"whatsapp_business_account"}"#), None);
        assert_eq!(about(&kept[..3]), None, "cut short");
        assert_eq!(about(b""), None);
    }

    /// The event kept in the forward queue, then written out for delivery.
    fn kept_and_delivered(event: OwnEvent) -> String {
        let kept = StoredStatus::of(event, 1, 1_767_225_600).encode();
        let delivered = String::from_utf8(body_to_deliver(kept.clone())).unwrap();
        assert!(
            kept.len() * 3 < delivered.len(),
            "kept in {} bytes, not the webhook's {}",
            kept.len(),
            delivered.len()
        );
        delivered
    }

    #[test]
    fn a_kept_status_is_delivered_as_metas_webhook_a_dropped_send_as_metas_failed_status() {
        let dropped = fate_of_send_7(QueueFate::Dropped(Refusal::OptedOut));
        let written = kept_and_delivered(OwnEvent::of_fate(&dropped));
        let body: Value = serde_json::from_str(&written).unwrap();
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], message_id_text(7));
        assert_eq!(status["status"], "failed");
        assert_eq!(status["recipient_id"], "16505550001");
        assert_eq!(status["errors"][0]["code"], 470_001);
        assert_eq!(status["wagate_reason"], "opted_out");
        let parsed = wagate_cloud_api::webhooks::events::parse_webhook(written.as_bytes());
        assert!(parsed.is_ok(), "Meta's shape, read by wagate's own parser");
        let released = QueuedSendFate {
            message_id: 8,
            fate: QueueFate::Released,
            ..dropped
        };
        let body: Value =
            serde_json::from_str(&kept_and_delivered(OwnEvent::of_fate(&released))).unwrap();
        assert_eq!(body["entry"][0]["changes"][0]["field"], "wagate_statuses");
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["status"], "released");
        assert!(status.get("errors").is_none() && status.get("queued_until").is_none());
        let queued = QueuedSendFate {
            message_id: 9,
            fate: QueueFate::Queued {
                until: wagate_rules::clock::Timestamp::from_unix_secs(1_767_229_200),
                reason: DeferReason::PairRate,
            },
            ..dropped
        };
        let body: Value =
            serde_json::from_str(&kept_and_delivered(OwnEvent::of_fate(&queued))).unwrap();
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["status"], "queued");
        assert_eq!(status["queued_until"], 1_767_229_200);
        assert_eq!(status["reason"], DeferReason::PairRate.name());
        assert!(status.get("errors").is_none() && status.get("wagate_reason").is_none());
    }

    #[test]
    fn other_forwards_are_delivered_as_they_were_stored() {
        let webhook = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
        assert_eq!(body_to_deliver(webhook.clone()), webhook);
        let unreadable = vec![STORED_STATUS, 0xff, 0xff];
        assert_eq!(body_to_deliver(unreadable.clone()), unreadable);
    }
}
