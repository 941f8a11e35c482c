//! What every automation's send shares: the loop bound (at most
//! [`MAX_AUTOMATED_REPLIES_PER_HOUR`] automated sends to a person from a number an hour), the
//! idempotency key that makes it once per message that caused it (and tells an automation's
//! own messages apart), the body, and its outcome counted and logged.

use serde_json::json;
use wagate_rules::hash::mix64;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::SendOptions;

use super::config::{AutomationConfig, MAX_AUTOMATED_REPLIES_PER_HOUR};
use super::metrics::bump;
use super::recent_calls::Limit;
use super::state::App;
use super::template_body::template_body;

const LOOP_LIMIT: [Limit; 1] = [Limit {
    calls: MAX_AUTOMATED_REPLIES_PER_HOUR as usize,
    window_secs: 3_600,
}];

/// What an automation's send's idempotency key starts with.
pub(crate) const AUTOMATION_KEY_PREFIX: &str = "wagate:automation:";

/// The key of automation `index`'s send caused by the message `wamid`.
pub(crate) fn automation_key(wamid: &str, index: usize) -> String {
    format!("{AUTOMATION_KEY_PREFIX}{wamid}:{index}")
}

/// True (counted and logged) when `person` had the most automated sends from `number` this
/// hour; otherwise this one is counted against them.
pub(crate) fn held(app: &App, number: PhoneNumberId, person: Msisdn) -> bool {
    let now = app.wagate.now().unix_secs();
    let pair = mix64(number.0 ^ mix64(person.digits()));
    if app.automated_replies.take(pair, now, &LOOP_LIMIT).is_ok() {
        return false;
    }
    bump(&app.metrics.automated_replies_held);
    tracing::warn!(
        number = number.0,
        "an automated send was held: this person had the most an hour"
    );
    true
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
