//! A send as the durable engine takes it: the decision request, the payload for the upstream,
//! and an optional idempotency key. What a decided one writes is `outcome`'s.

use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::request::{parse_send, ParsedSend};
use wagate_rules::decision::SendRequest;
use wagate_rules::ids::PhoneNumberId;

/// One send as the engine takes it: what the rules judge (`request`) and what goes to Meta
/// (`payload`). Made from the Cloud API body with [`Submission::from_send_body`], the two
/// cannot disagree (the server and an embedder take this way); a literal is for tests and
/// benchmarks that decide without a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub request: SendRequest,
    /// The message exactly as it goes upstream (for the Cloud API, its JSON body).
    pub payload: Vec<u8>,
    pub idempotency_key: Option<String>,
    /// When the rules make it wait (tier limit, pacing): keep it durably and send it when
    /// they allow, instead of answering "deferred" and forgetting it.
    pub queue_when_deferred: bool,
}

/// A send body read as the Cloud API reads it: the submission, and the recipient as the caller
/// wrote it (Meta echoes it in `contacts[].input`).
#[derive(Debug, Clone)]
pub struct ReadSend {
    pub submission: Submission,
    pub input: String,
}

impl Submission {
    /// The send Meta's `POST /{phone_number_id}/messages` body asks for, from `number`: the
    /// decision's request is read from the body itself (recipient, type, template and its
    /// parameters), and the body goes to Meta as it is. A body Meta would refuse is refused
    /// here with Meta's error.
    pub fn from_send_body(
        number: PhoneNumberId,
        body: Vec<u8>,
        idempotency_key: Option<String>,
        queue_when_deferred: bool,
    ) -> Result<ReadSend, ApiError> {
        let parsed = parse_send(&body)?;
        Ok(Self::from_parsed(
            number,
            body,
            parsed,
            idempotency_key,
            queue_when_deferred,
        ))
    }

    /// Like [`Submission::from_send_body`], for a body already read (`parsed` from `body`, by
    /// `wagate_cloud_api::request::parse_messages`, which also tells read marks apart).
    pub fn from_parsed(
        number: PhoneNumberId,
        body: Vec<u8>,
        parsed: ParsedSend,
        idempotency_key: Option<String>,
        queue_when_deferred: bool,
    ) -> ReadSend {
        let ParsedSend {
            input, to, message, ..
        } = parsed;
        ReadSend {
            submission: Submission {
                request: SendRequest {
                    number,
                    to,
                    message,
                    options: Default::default(),
                },
                payload: body,
                idempotency_key,
                queue_when_deferred,
            },
            input,
        }
    }
}

/// A submission after the engine gave it an id and, if keyed, a body hash and expiry.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) submission: Submission,
    pub(crate) message_id: u64,
    pub(crate) body_hash: u64,
    /// Unix seconds at which the idempotency record lapses.
    pub(crate) expires_at: u64,
    /// The queue record this submission is released from; whatever is decided removes it.
    pub(crate) released_from: Option<[u8; 16]>,
    /// The number its idempotency record is kept under: the one the caller named (a send to a
    /// pool names the pool's first, whichever number it goes from), so a retry finds it.
    pub(crate) key_number: wagate_rules::ids::PhoneNumberId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::decision::Message;

    const NUMBER: PhoneNumberId = PhoneNumberId(1001);

    #[test]
    fn a_send_body_is_judged_by_what_it_asks_for_and_goes_to_meta_as_written() {
        let template =
            br#"{"messaging_product":"whatsapp","to":"+1 650 555 1234","type":"template",
            "template":{"name":"order_update","language":{"code":"en_US"}}}"#;
        let read = Submission::from_send_body(NUMBER, template.to_vec(), Some("k".into()), true)
            .expect("a valid template send");
        let Message::Template(send) = &read.submission.request.message else {
            panic!("not a template: {:?}", read.submission.request.message);
        };
        assert_eq!(send.name, "order_update");
        assert_eq!(read.submission.request.to.digits(), 16_505_551_234);
        assert_eq!(read.input, "+1 650 555 1234");
        assert_eq!(read.submission.payload, template.to_vec());
        assert_eq!(read.submission.idempotency_key.as_deref(), Some("k"));
        assert!(read.submission.queue_when_deferred);

        let text = br#"{"messaging_product":"whatsapp","to":"16505551234","type":"text",
            "text":{"body":"hi"}}"#;
        let read = Submission::from_send_body(NUMBER, text.to_vec(), None, false).unwrap();
        assert!(matches!(
            read.submission.request.message,
            Message::Text { .. }
        ));
    }

    #[test]
    fn a_body_meta_would_refuse_is_refused_with_metas_error() {
        let refused = Submission::from_send_body(NUMBER, b"{not json".to_vec(), None, false)
            .expect_err("not JSON");
        assert_eq!((refused.http_status, refused.code), (400, 100));
        assert!(refused.to_string().starts_with("(#100)"), "{refused}");
    }
}
