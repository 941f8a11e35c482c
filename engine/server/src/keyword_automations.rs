//! Keyword automations: a person's message that is a tenant's keyword (its whole text, a
//! button's payload or an interactive reply's id, any case) answers with the automation's text
//! (inside the window the message opened) or template, through the rules like any send.
//!
//! Once per message: Meta's retries of the webhook are not applied again, and each answer
//! carries the message's wamid in its idempotency key. Loop protection: at most
//! [`MAX_AUTOMATED_REPLIES_PER_HOUR`](super::config::MAX_AUTOMATED_REPLIES_PER_HOUR) automated
//! answers a person an hour from a number, so two automated parties answering each other stop
//! there.

use wagate_rules::ids::{Msisdn, PhoneNumberId};

use super::automation_send::{automation_key, held, send_automated};
use super::state::App;

/// Whether any tenant answers keywords (only then do webhook reports list what people said).
pub(crate) fn any(app: &App) -> bool {
    app.config
        .tenants
        .iter()
        .any(|t| t.automations.iter().any(|a| a.keyword.is_some()))
}

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
            if held(app, number, person) {
                continue;
            }
            let key = automation_key(&wamid, index);
            send_automated(app, number, person, automation, key, Default::default()).await;
        }
    }
}
