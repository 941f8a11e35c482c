//! A send wagate makes on a business's behalf in answer to a person or to Meta (an opt-out's
//! confirmation, an automation's answer or follow-up): through the rules like any send, keyed
//! by the message that caused it so that it goes once, and never failing the webhook that
//! caused it.

use wagate_durable::submission::Submission;
use wagate_durable::wagate::SubmitResult;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::SendOptions;

use super::state::{blocking, App};

/// Submits the Cloud API `body` from `number` under `key` with `options` (a send at a later
/// instant is queued until then): `Ok` when accepted or queued, else why not (for the
/// caller's log).
pub(crate) async fn send_on_behalf(
    app: &App,
    number: PhoneNumberId,
    body: Vec<u8>,
    key: String,
    options: SendOptions,
) -> Result<(), String> {
    let worker = app.clone();
    let sent = blocking(move || {
        let queue = options.send_at.is_some();
        let mut read = Submission::from_send_body(number, body, Some(key), queue)
            .map_err(super::reply::ApiErrorResponse::from)?;
        read.submission.request.options = options;
        Ok(worker.wagate.submit(read.submission))
    })
    .await;
    match sent {
        Ok(Ok(SubmitResult::Accepted { .. } | SubmitResult::Queued { .. })) => Ok(()),
        Ok(Ok(result)) => Err(format!("{result:?}")),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("its body was refused".to_string()),
    }
}
