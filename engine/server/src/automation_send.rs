//! What every automation's send shares: the idempotency key that makes it once per message
//! that caused it (and tells an automation's own messages apart), the body, and its outcome
//! counted and logged, with the sends the loop bound held (the bound itself is the person's
//! shard's: `wagate_rules::automations`).

use serde_json::json;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::SendOptions;

use super::config::AutomationConfig;
use super::metrics::bump;
use super::state::App;
use super::template_body::template_body;

/// What an automation's send's idempotency key starts with.
pub(crate) const AUTOMATION_KEY_PREFIX: &str = "wagate:automation:";

/// The key of automation `index`'s send caused by the message `wamid`.
pub(crate) fn automation_key(wamid: &str, index: usize) -> String {
    format!("{AUTOMATION_KEY_PREFIX}{wamid}:{index}")
}

/// Counts and logs the automated sends to a person the loop bound held (decided on their
/// shard).
pub(crate) fn held(app: &App, number: PhoneNumberId, count: u32) {
    if count == 0 {
        return;
    }
    app.metrics.automated_replies_held.inc_by(u64::from(count));
    tracing::warn!(
        number = number.0,
        count,
        "automated sends were held: this person had the most an hour"
    );
}

/// Sends `automation`'s text or template to `person` from `number` under `key`.
pub(crate) async fn send_automated(
    app: &App,
    number: PhoneNumberId,
    person: Msisdn,
    automation: &AutomationConfig,
    key: String,
    options: SendOptions,
) {
    let to = person.digits().to_string();
    let body = match (&automation.text, &automation.template) {
        (Some(text), _) => json!({
            "messaging_product": "whatsapp", "recipient_type": "individual",
            "to": to, "type": "text", "text": { "body": text.trim() },
        })
        .to_string()
        .into_bytes(),
        (None, Some(template)) => template_body(&to, template, &automation.language, &[]),
        (None, None) => return,
    };
    match super::on_behalf::send_on_behalf(app, number, body, key, options).await {
        Ok(()) => bump(&app.metrics.automated_replies),
        Err(why) => {
            bump(&app.metrics.automated_replies_failed);
            tracing::warn!(number = number.0, why, "an automated send was not accepted");
        }
    }
}
