//! Keyword automations: a person's message that is a tenant's keyword (its whole text, a
//! button's payload or an interactive reply's id, any case) answers with the automation's text
//! (inside the window the message opened) or template, through the rules like any send. Which
//! automations a message sets going, within the loop bound, is decided on the person's shard
//! (`wagate_rules::automations`); this sends them.
//!
//! Once per message: Meta's retries of the webhook are not applied again, and each answer
//! carries the message's wamid in its idempotency key. Loop protection: at most
//! [`MAX_AUTOMATED_PER_HOUR`](super::config::MAX_AUTOMATED_PER_HOUR) automated sends to a
//! person an hour from a number, so two automated parties answering each other stop there.

use wagate_rules::contact_events::Automated;
use wagate_rules::ids::{Msisdn, PhoneNumberId};

use super::automation_send::{automation_key, held, send_automated};
use super::state::App;

/// Sends what people's messages set going (the number, the person, their message's wamid, the
/// automations by index in the owning tenant's list); a failure is logged and counted, never
/// the webhook's.
pub(crate) async fn answer(app: &App, answered: Vec<(PhoneNumberId, Msisdn, String, Automated)>) {
    for (number, person, wamid, automated) in answered {
        held(app, number, automated.held);
        let Some(tenant) = app.tenant_config_of(number) else {
            continue;
        };
        for index in automated.fired {
            let Some(automation) = tenant.automations.get(index) else {
                continue;
            };
            let key = automation_key(&wamid, index);
            send_automated(app, number, person, automation, key, Default::default()).await;
        }
    }
}
