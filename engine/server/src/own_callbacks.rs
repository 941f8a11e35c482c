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
//! (`wagate_durable::tenant_news`): both are kept or neither. A send's news is kept in the
//! forward queue in its compact form and written out as Meta's webhook when it is delivered
//! (`own_status`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::config::TenantConfig;
use super::forward::{ForwardInbox, Forwarder};
use super::own_status::{OwnEvent, StoredStatus};
use wagate_durable::campaigns::CampaignEvent;
use wagate_durable::tenant_news::{News, NewsWriter};
use wagate_rules::clock::Timestamp;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::registry::Registry;
use wagate_store::Batch;

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
            Body::Status(event, at) => StoredStatus::of(event, *account, at.unix_secs()).encode(),
            Body::Campaign(event, _) if event.tenant != *tenant => return 0,
            Body::Campaign(event, at) => campaign_webhook(event, *account, at.unix_secs())
                .to_string()
                .into_bytes(),
        };
        let seq = self.inbox.next_seq();
        wagate_durable::forward_queue::put_forward(batch, seq, tenant, &body);
        1
    }

    fn committed(&self, count: usize) {
        self.inbox.added(count);
    }

    fn about(&self, record: &[u8]) -> Option<(PhoneNumberId, wagate_rules::ids::Msisdn)> {
        super::own_status::about(record)
    }
}

/// What one piece of news reads as, before it is addressed.
enum Body<'a> {
    Status(OwnEvent, Timestamp),
    Campaign(&'a CampaignEvent, Timestamp),
}
