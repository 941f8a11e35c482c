//! A read mark on the messages endpoint: `{"messaging_product":"whatsapp","status":"read",
//! "message_id":"wamid...","typing_indicator":{"type":"text"}}`. It tells Meta the business
//! read a message the person sent (blue ticks), and with the typing indicator shows the person
//! that a reply is being written. It sends nothing, so no sending rule judges it; it is checked
//! here only for what Meta would refuse, so that a malformed one never leaves wagate.

use serde::Deserialize;

use super::{Envelope, TYPES};
use crate::error::ApiError;
use crate::json_text::{required, text, Text};

/// A read mark as wagate checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    /// The id Meta gave the person's message (`wamid...`).
    pub message_id: String,
    /// Whether it also shows the typing indicator.
    pub typing_indicator: bool,
}

/// The typing indicator's object; `text` is its one type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingIndicator<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
}

pub(super) fn parse(envelope: &Envelope) -> Result<ReadMark, ApiError> {
    match required(&envelope.messaging_product, "request", "messaging_product")? {
        "whatsapp" => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "messaging_product must be \"whatsapp\", not \"{other}\""
            )))
        }
    }
    match text(&envelope.status) {
        Some("read") => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "request.status must be \"read\", not {other:?}"
            )))
        }
    }
    if let Some(key) = &envelope.unexpected {
        return Err(ApiError::invalid_parameter(format!(
            "unexpected key request.{key}"
        )));
    }
    // A read mark names no recipient and carries no message: a body with those is a send
    // mistaken for one, and Meta would not send it.
    let sent_keys = [
        ("to", envelope.to.is_some()),
        ("type", envelope.kind.is_some()),
        ("recipient_type", envelope.recipient_type.is_some()),
        (
            "biz_opaque_callback_data",
            envelope.biz_opaque_callback_data.is_some(),
        ),
    ];
    let body_key = (0..TYPES.len())
        .find(|slot| envelope.has_body(*slot))
        .map(|slot| TYPES[slot]);
    if let Some(key) = sent_keys
        .iter()
        .find_map(|(key, given)| given.then_some(*key))
        .or(body_key)
    {
        return Err(ApiError::invalid_parameter(format!(
            "request.{key} is not part of a read mark"
        )));
    }
    let message_id = required(&envelope.message_id, "request", "message_id")?;
    if message_id.trim().is_empty() {
        return Err(ApiError::invalid_parameter("request.message_id is empty"));
    }
    let typing_indicator = match envelope.typing_indicator {
        None => false,
        Some(raw) => {
            let indicator: TypingIndicator = serde_json::from_str(raw.get()).map_err(|e| {
                ApiError::invalid_parameter(format!("request.typing_indicator: {e}"))
            })?;
            match text(&indicator.kind) {
                Some("text") => true,
                other => {
                    return Err(ApiError::invalid_parameter(format!(
                        "request.typing_indicator.type must be \"text\", not {other:?}"
                    )))
                }
            }
        }
    };
    Ok(ReadMark {
        message_id: message_id.to_string(),
        typing_indicator,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_messages, parse_send, MessagesRequest};
    use super::*;

    fn mark(json: &str) -> Result<ReadMark, ApiError> {
        match parse_messages(json.as_bytes())? {
            MessagesRequest::ReadMark(mark) => Ok(mark),
            MessagesRequest::Send(send) => panic!("read as a send: {send:?}"),
        }
    }

    #[test]
    fn metas_documented_read_mark_with_and_without_the_typing_indicator() {
        let with = mark(
            r#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.HBgL",
                "typing_indicator":{"type":"text"}}"#,
        )
        .unwrap();
        assert_eq!(
            with,
            ReadMark {
                message_id: "wamid.HBgL".into(),
                typing_indicator: true
            }
        );
        let without =
            mark(r#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.2"}"#)
                .unwrap();
        assert!(!without.typing_indicator);
    }

    #[test]
    fn what_meta_would_refuse_is_refused_with_its_code() {
        for (body, code, says) in [
            (
                r#"{"messaging_product":"whatsapp","status":"read"}"#,
                131_008,
                "message_id",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"delivered","message_id":"w"}"#,
                100,
                "must be \"read\"",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"read","message_id":"w","to":"1"}"#,
                100,
                "request.to is not part",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"read","message_id":"w","text":{"body":"x"}}"#,
                100,
                "request.text is not part",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"read","message_id":"w","typing_indicator":{"type":"audio"}}"#,
                100,
                "must be \"text\"",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"read","message_id":"w","typing_indicator":{"type":"text","for":1}}"#,
                100,
                "typing_indicator",
            ),
            (
                r#"{"messaging_product":"whatsapp","status":"read","message_id":"w","colour":1}"#,
                100,
                "unexpected key request.colour",
            ),
            (
                r#"{"messaging_product":"sms","status":"read","message_id":"w"}"#,
                100,
                "messaging_product",
            ),
        ] {
            let refused = mark(body).expect_err(body);
            assert_eq!(refused.code, code, "{body}: {refused}");
            assert!(refused.to_string().contains(says), "{body}: {refused}");
        }
    }

    #[test]
    fn a_read_mark_is_no_send_and_a_send_carries_no_read_mark_keys() {
        let refused = parse_send(
            br#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.1"}"#,
        )
        .expect_err("not a send");
        assert!(refused.to_string().contains("not a send"), "{refused}");
        let refused = parse_messages(
            br#"{"messaging_product":"whatsapp","to":"16505551234","type":"text",
                "text":{"body":"hi"},"typing_indicator":{"type":"text"}}"#,
        )
        .expect_err("a send with a typing indicator");
        assert!(refused.to_string().contains("read mark"), "{refused}");
    }
}
