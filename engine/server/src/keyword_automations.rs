//! Keyword automations: a person's message that is a tenant's keyword (its whole text, a
//! button's payload or an interactive reply's id, any case) answers with the automation's text
//! (inside the window the message opened) or template, through the rules like any send.
//!
//! Once per message: Meta's retries of the webhook are not applied again, and each answer
//! carries the message's wamid in its idempotency key. Loop protection: at most
//! [`MAX_AUTOMATED_REPLIES_PER_HOUR`] automated answers a person an hour from a number, so two
//! automated parties answering each other stop there.

use serde_json::json;
use wagate_rules::hash::mix64;
use wagate_rules::ids::{Msisdn, PhoneNumberId};

use super::config::{AutomationConfig, MAX_AUTOMATED_REPLIES_PER_HOUR};
use super::metrics::bump;
use super::recent_calls::Limit;
use super::state::App;
use super::template_body::template_body;

const LOOP_LIMIT: [Limit; 1] = [Limit {
    calls: MAX_AUTOMATED_REPLIES_PER_HOUR as usize,
    window_secs: 3_600,
}];

/// Answers what people said (the number, the person, the words, their message's wamid) where
/// the owning tenant has a keyword automation for it; a failure is logged and counted, never
/// the webhook's.
pub(crate) async fn answer(app: &App, said: Vec<(PhoneNumberId, Msisdn, String, String)>) {
    for (number, person, words, wamid) in said {
        let Some(owner) = app.tenants.owner(number) else {
            continue;
        };
        let Some(tenant) = app.config.tenants.iter().find(|t| t.name == owner.name) else {
            continue;
        };
        let words = words.trim();
        for (index, automation) in tenant.automations.iter().enumerate() {
            let keyword = automation.keyword.as_deref().map(str::trim);
            if !keyword.is_some_and(|k| k.eq_ignore_ascii_case(words)) {
                continue;
            }
            let now = app.wagate.now().unix_secs();
            let pair = mix64(number.0 ^ mix64(person.digits()));
            if app.automated_replies.take(pair, now, &LOOP_LIMIT).is_err() {
                bump(&app.metrics.automated_replies_held);
                tracing::warn!(
                    number = number.0,
                    "an automated answer was held: this person had the most an hour"
                );
                continue;
            }
            let key = format!("wagate:automation:{wamid}:{index}");
            reply(app, number, person, automation, key).await;
        }
    }
}

async fn reply(
    app: &App,
    number: PhoneNumberId,
    person: Msisdn,
    automation: &AutomationConfig,
    key: String,
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
    match super::on_behalf::send_on_behalf(app, number, body, key).await {
        Ok(()) => bump(&app.metrics.automated_replies),
        Err(why) => {
            bump(&app.metrics.automated_replies_failed);
            tracing::warn!(
                number = number.0,
                why,
                "an automated answer was not accepted"
            );
        }
    }
}
