//! The confirmation a tenant may send a person whose keyword or button opted them out: once per
//! opt-out (Meta's retries of the webhook are not applied again, and the send carries the
//! opt-out message's wamid as its idempotency key), as a free-form reply inside the window
//! their message opened. Everything else stays withdrawn: the rules still refuse any template.

use serde_json::json;
use wagate_rules::ids::{Msisdn, PhoneNumberId};

use super::metrics::bump;
use super::state::App;

/// Sends the owning tenant's confirmation to each person who opted out (the number, the
/// person, their message's wamid); a failure is logged and counted, never the webhook's.
pub(crate) async fn confirm(app: &App, opted_out: Vec<(PhoneNumberId, Msisdn, String)>) {
    for (number, person, wamid) in opted_out {
        let Some(text) = app
            .tenants
            .owner(number)
            .and_then(|tenant| tenant.opt_out_confirmation.clone())
        else {
            continue;
        };
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": person.digits().to_string(),
            "type": "text",
            "text": { "body": text.trim() },
        });
        let key = format!("wagate:opt-out-confirmation:{wamid}");
        let body = body.to_string().into_bytes();
        match super::on_behalf::send_on_behalf(app, number, body, key, Default::default()).await {
            Ok(()) => bump(&app.metrics.opt_out_confirmations),
            Err(why) => {
                bump(&app.metrics.opt_out_confirmations_failed);
                tracing::warn!(
                    number = number.0,
                    why,
                    "an opt-out confirmation was not accepted"
                );
            }
        }
    }
}
