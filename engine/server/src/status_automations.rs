//! Status automations: Meta's status of one of a tenant's messages (`delivered`, `read`,
//! `failed`), of one template if the automation names it, sends the automation's template to
//! the person `after_secs` later, queued durably until then and decided by the rules of that
//! second like any scheduled send.
//!
//! Once per message: only a status that moved the message counts (Meta's repeats and stale
//! statuses do not), and the follow-up is keyed by the message's wamid. Loop protection: a
//! follow-up's or an answer's own statuses never set another going, and the hourly bound of
//! every automation holds. Which automations a status sets going, within that bound, is
//! decided on the person's shard (`wagate_rules::automations`).

use wagate_cloud_api::webhooks::events::DeliveryStatus;
use wagate_durable::wagate::MovedStatus;
use wagate_rules::clock::Timestamp;
use wagate_rules::SendOptions;

use super::automation_send::{automation_key, held, send_automated, AUTOMATION_KEY_PREFIX};
use super::state::{blocking, App};

/// The automation's name of a status.
fn status_name(status: DeliveryStatus) -> Option<&'static str> {
    match status {
        DeliveryStatus::Delivered => Some("delivered"),
        DeliveryStatus::Read | DeliveryStatus::Played => Some("read"),
        DeliveryStatus::Failed => Some("failed"),
        DeliveryStatus::Sent => None,
    }
}

/// Follows the statuses that moved a message where its owning tenant has an automation for
/// them (which ones, within the loop bound, decided on the person's shard); a failure is
/// logged and counted, never the webhook's.
pub(crate) async fn follow(app: &App, moved: Vec<MovedStatus>) {
    for status in moved {
        let Some(name) = status_name(status.status) else {
            continue;
        };
        let Some(tenant) = app.tenant_config_of(status.number) else {
            continue;
        };
        if !tenant
            .automations
            .iter()
            .any(|a| a.status.as_deref() == Some(name))
        {
            continue;
        }
        let Some((key, template)) = message_of(app, &status.wamid).await else {
            continue;
        };
        if key.starts_with(AUTOMATION_KEY_PREFIX) {
            // An automation's own message: following it could loop.
            continue;
        }
        let (worker, number, person) = (app.clone(), status.number, status.person);
        let decided = blocking(move || {
            worker
                .wagate
                .follow_status(number, person, name, template)
                .map_err(|e| wagate_cloud_api::error::ApiError::from(&e).into())
        })
        .await;
        let automated = match decided {
            Ok(automated) => automated,
            Err(why) => {
                tracing::warn!(number = number.0, error = %why.0.details, "following a status failed");
                continue;
            }
        };
        held(app, number, automated.held);
        for index in automated.fired {
            let Some(automation) = tenant.automations.get(index) else {
                continue;
            };
            let at = app.wagate.now().unix_secs() + automation.after_secs;
            let options = SendOptions {
                send_at: (automation.after_secs > 0).then(|| Timestamp::from_unix_secs(at)),
                ..SendOptions::default()
            };
            let key = automation_key(&status.wamid, index);
            send_automated(app, number, person, automation, key, options).await;
        }
    }
}

/// The idempotency key and template name (if a template) of the message sent as `wamid`.
async fn message_of(app: &App, wamid: &str) -> Option<(String, Option<String>)> {
    let (worker, wamid) = (app.clone(), wamid.to_string());
    let found = blocking(move || {
        let id = worker.wagate.message_id_of(&wamid).ok().flatten();
        Ok(id.and_then(|id| worker.wagate.message(id).ok().flatten()))
    })
    .await
    .ok()
    .flatten()?;
    let template = serde_json::from_slice::<serde_json::Value>(&found.payload)
        .ok()
        .and_then(|body| Some(body["template"]["name"].as_str()?.to_string()));
    Some((found.idempotency_key, template))
}
