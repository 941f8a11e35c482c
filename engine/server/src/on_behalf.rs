//! A send wagate makes on a business's behalf in answer to a person (an opt-out's confirmation,
//! an automation's answer): through the rules like any send, keyed by the person's message so
//! that it goes once, and never failing the webhook that caused it.

use wagate_durable::submission::Submission;
use wagate_durable::wagate::SubmitResult;
use wagate_rules::ids::PhoneNumberId;

use super::state::{blocking, App};

/// Submits the Cloud API `body` from `number` under `key`: `Ok` when accepted, else why not
/// (for the caller's log).
pub(crate) async fn send_on_behalf(
    app: &App,
    number: PhoneNumberId,
    body: Vec<u8>,
    key: String,
) -> Result<(), String> {
    let worker = app.clone();
    let sent = blocking(move || {
        let read = Submission::from_send_body(number, body, Some(key), false)
            .map_err(super::reply::ApiErrorResponse::from)?;
        Ok(worker.wagate.submit(read.submission))
    })
    .await;
    match sent {
        Ok(Ok(SubmitResult::Accepted { .. })) => Ok(()),
        Ok(Ok(result)) => Err(format!("{result:?}")),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("its body was refused".to_string()),
    }
}
