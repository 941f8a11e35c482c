//! Meta's messages endpoint (`POST /{version}/{phone_number_id}/messages`): a send request,
//! read into what the rules need, or a read mark (with the typing indicator), with Meta's
//! errors for what is malformed.
//!
//! Only the fields Meta documents are accepted; an unknown one is refused (code 100), as Meta
//! refuses it, so a typo never reaches the upstream. The request is read straight into typed
//! parts, strings borrowed from the body, with no intermediate JSON tree: every accepted send
//! is read once here, so this is on the hot path of ingest. The template and text bodies (what
//! nearly every send is) are read typed at their key, in the same pass as the envelope; only a
//! body that fails to read so is read again, each type's body kept as written until its type
//! is known, so that what is refused, and in which order, is the same either way.

mod bodies;
mod read_mark;
mod template;
mod template_create;

pub use read_mark::ReadMark;
pub use template_create::parse_template_create;

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::json_text::{read_body, required, text, Text};
use wagate_rules::decision::Message;
use wagate_rules::ids::Msisdn;
use wagate_rules::template::model::MediaKind;

/// A send request as wagate understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSend {
    /// The recipient as the caller wrote it (echoed in `contacts[].input`).
    pub input: String,
    pub to: Msisdn,
    pub message: Message,
    pub biz_opaque_callback_data: Option<String>,
}

/// The message types, each also the key of its body in the envelope.
const TYPES: [&str; 11] = [
    "text",
    "template",
    "image",
    "document",
    "video",
    "audio",
    "sticker",
    "interactive",
    "location",
    "contacts",
    "reaction",
];

/// The slots of the bodies read eagerly, in [`TYPES`].
const TEXT_SLOT: usize = 0;
const TEMPLATE_SLOT: usize = 1;

/// The longest group id wagate takes (Meta's are tens of characters).
const MAX_GROUP_ID_BYTES: usize = 256;

/// Envelope keys Meta documents whose values wagate does not read.
const PASSED_THROUGH: [&str; 2] = ["context", "recipient_identity_key_hash"];

/// The request's top level, with each message type's body kept unread until the type is known
/// (or, read eagerly, the template and text bodies read at their keys).
#[derive(Default)]
struct Envelope<'a> {
    messaging_product: Option<Text<'a>>,
    recipient_type: Option<Text<'a>>,
    to: Option<Text<'a>>,
    kind: Option<Text<'a>>,
    biz_opaque_callback_data: Option<Text<'a>>,
    /// A read mark's keys (`status: "read"`, `message_id`, `typing_indicator`).
    status: Option<Text<'a>>,
    message_id: Option<Text<'a>>,
    typing_indicator: Option<&'a RawValue>,
    bodies: [Option<&'a RawValue>; TYPES.len()],
    /// The template and text bodies, read typed at their keys (by an eager read only; kept
    /// apart from `bodies` so that the envelope stays small to build and move).
    template: Option<template::TemplateBody<'a>>,
    text: Option<bodies::TextBody<'a>>,
    /// The first key Meta does not document, refused once the type is known to be supported.
    unexpected: Option<String>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor { eager: false })
    }
}

/// An envelope whose template and text bodies are read typed at their keys: one pass over the
/// request where the other reads these bodies twice (once to keep them, once to read them).
struct EagerEnvelope<'a>(Envelope<'a>);

impl<'de> Deserialize<'de> for EagerEnvelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(EnvelopeVisitor { eager: true })
            .map(EagerEnvelope)
    }
}

/// Reads a messages endpoint body: in one pass, or, if that fails, kept part by part as
/// written, which is what says why (a template that does not read is no error when the type is
/// another, and an unknown type or key is said before a malformed body).
fn read_envelope(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    match serde_json::from_slice::<EagerEnvelope>(body) {
        Ok(EagerEnvelope(envelope)) => Ok(envelope),
        Err(_) => read_body(body),
    }
}

struct EnvelopeVisitor {
    eager: bool,
}

impl Envelope<'_> {
    /// Whether the body of the type in `slot` of [`TYPES`] was given, read or kept.
    fn has_body(&self, slot: usize) -> bool {
        self.bodies[slot].is_some()
            || (slot == TEMPLATE_SLOT && self.template.is_some())
            || (slot == TEXT_SLOT && self.text.is_some())
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let field = match key.as_str() {
                "messaging_product" => &mut envelope.messaging_product,
                "recipient_type" => &mut envelope.recipient_type,
                "to" => &mut envelope.to,
                "type" => &mut envelope.kind,
                "biz_opaque_callback_data" => &mut envelope.biz_opaque_callback_data,
                "status" => &mut envelope.status,
                "message_id" => &mut envelope.message_id,
                "typing_indicator" => {
                    envelope.typing_indicator = Some(map.next_value()?);
                    continue;
                }
                "template" if self.eager => {
                    envelope.template = Some(map.next_value()?);
                    continue;
                }
                "text" if self.eager => {
                    envelope.text = Some(map.next_value()?);
                    continue;
                }
                other => {
                    if let Some(i) = TYPES.iter().position(|kind| *kind == other) {
                        envelope.bodies[i] = Some(map.next_value()?);
                    } else {
                        if !PASSED_THROUGH.contains(&other) && envelope.unexpected.is_none() {
                            envelope.unexpected = Some(other.to_string());
                        }
                        map.next_value::<IgnoredAny>()?;
                    }
                    continue;
                }
            };
            *field = map.next_value().map_err(|_| {
                A::Error::custom(format!("request.{} must be a string", key.as_str()))
            })?;
        }
        Ok(envelope)
    }
}

/// What the messages endpoint is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagesRequest {
    Send(ParsedSend),
    /// Marks a message the person sent as read (and may show the typing indicator): it goes
    /// to Meta as it is, judged by no sending rule.
    ReadMark(ReadMark),
}

/// Parses a body of the messages endpoint: a send or a read mark.
pub fn parse_messages(body: &[u8]) -> Result<MessagesRequest, ApiError> {
    let envelope = read_envelope(body)?;
    if envelope.status.is_some() {
        return read_mark::parse(&envelope).map(MessagesRequest::ReadMark);
    }
    send_from(envelope).map(MessagesRequest::Send)
}

/// Parses a send request body (bulk lines, gRPC and embedders send; a read mark is refused:
/// it is no send, and goes to the messages endpoint).
pub fn parse_send(body: &[u8]) -> Result<ParsedSend, ApiError> {
    let envelope = read_envelope(body)?;
    if envelope.status.is_some() {
        return Err(ApiError::invalid_parameter(
            "a read mark (request.status) is not a send: post it to /{phone_number_id}/messages",
        ));
    }
    send_from(envelope)
}

fn send_from(envelope: Envelope) -> Result<ParsedSend, ApiError> {
    let kind = text(&envelope.kind).unwrap_or("text");
    let Some(slot) = TYPES.iter().position(|known| *known == kind) else {
        return Err(ApiError::new(
            400,
            131_051,
            "Unsupported message type",
            format!("type \"{kind}\""),
            "unsupported_type",
        ));
    };
    if let Some(key) = &envelope.unexpected {
        return Err(ApiError::invalid_parameter(format!(
            "unexpected key request.{key}"
        )));
    }
    if envelope.message_id.is_some() || envelope.typing_indicator.is_some() {
        return Err(ApiError::invalid_parameter(
            "request.message_id and request.typing_indicator belong to a read mark (with \"status\":\"read\"), not a send",
        ));
    }
    match required(&envelope.messaging_product, "request", "messaging_product")? {
        "whatsapp" => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "messaging_product must be \"whatsapp\", not \"{other}\""
            )))
        }
    }
    let input = required(&envelope.to, "request", "to")?;
    let to = match text(&envelope.recipient_type).unwrap_or("individual") {
        "individual" => {
            Msisdn::parse(input).map_err(|e| ApiError::invalid_parameter(format!("to: {e}")))?
        }
        // A group's id (Meta's, opaque): decided and kept under the group's key.
        "group" if !input.trim().is_empty() && input.len() <= MAX_GROUP_ID_BYTES => {
            Msisdn::of_group(input)
        }
        "group" => {
            return Err(ApiError::invalid_parameter(
                "to: a group's id (its group_id) is needed",
            ))
        }
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "recipient_type must be \"individual\" or \"group\", not \"{other}\""
            )))
        }
    };
    let message = match (envelope.template, envelope.text) {
        (Some(read), _) if slot == TEMPLATE_SLOT => {
            Message::Template(template::template_send(read)?)
        }
        (_, Some(read)) if slot == TEXT_SLOT => bodies::text_message(read)?,
        _ => {
            let body = envelope.bodies[slot].ok_or_else(|| {
                ApiError::missing_parameter(format!("type is {kind} but request.{kind} is missing"))
            })?;
            match kind {
                "text" => bodies::parse_text(body)?,
                "template" => Message::Template(template::parse_template(body)?),
                "image" => bodies::parse_media(body, MediaKind::Image)?,
                "document" => bodies::parse_media(body, MediaKind::Document)?,
                "video" => bodies::parse_media(body, MediaKind::Video)?,
                "interactive" => bodies::parse_interactive(body)?,
                _ => Message::Other,
            }
        }
    };
    let biz_opaque_callback_data = text(&envelope.biz_opaque_callback_data);
    if biz_opaque_callback_data.is_some_and(|d| d.chars().count() > 512) {
        return Err(ApiError::invalid_parameter(
            "biz_opaque_callback_data is longer than 512 characters",
        ));
    }
    Ok(ParsedSend {
        input: input.to_string(),
        to,
        message,
        biz_opaque_callback_data: biz_opaque_callback_data.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_rules::template::model::{ButtonParam, ButtonParamValue, HeaderParam};

    fn parse(json: &str) -> Result<ParsedSend, ApiError> {
        parse_send(json.as_bytes())
    }

    #[test]
    fn parses_metas_documented_text_request() {
        let sent = parse(
            r#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234",
            "type":"text","text":{"preview_url":false,"body":"Your order #123 has shipped."}}"#,
        )
        .unwrap();
        assert_eq!(sent.to, Msisdn::from_digits(16_505_551_234).unwrap());
        assert_eq!(sent.input, "+16505551234");
        assert_eq!(sent.message, Message::text("Your order #123 has shipped."));
    }

    #[test]
    fn parses_metas_documented_template_request() {
        let sent = parse(r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template",
         "template":{"name":"order_update","language":{"code":"en_US"},
          "components":[
           {"type":"header","parameters":[{"type":"image","image":{"id":"1234567890"}}]},
           {"type":"body","parameters":[{"type":"text","text":"Ana"},
             {"type":"currency","currency":{"fallback_value":"$10.99","code":"USD","amount_1000":10990}},
             {"type":"date_time","date_time":{"fallback_value":"May 1, 2026"}}]},
           {"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"CONFIRM_123"}]},
           {"type":"button","sub_type":"quick_reply","index":"1","parameters":[{"type":"payload","payload":"STOP_PROMOS"}]},
           {"type":"button","sub_type":"url","index":"2","parameters":[{"type":"text","text":"abc%20123"}]}]}}"#)
        .unwrap();
        let Message::Template(template) = sent.message else {
            panic!("a template")
        };
        assert_eq!(
            (template.name.as_str(), template.language.as_str()),
            ("order_update", "en_US")
        );
        assert_eq!(
            template.header,
            Some(HeaderParam::Media {
                kind: MediaKind::Image,
                link: None
            })
        );
        let texts: Vec<_> = template.body.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["Ana", "$10.99", "May 1, 2026"]);
        assert_eq!(template.buttons.len(), 3);
        assert_eq!(
            template.buttons[2],
            ButtonParam {
                index: 2,
                value: ButtonParamValue::UrlSuffix("abc%20123".into())
            }
        );
    }

    #[test]
    fn parses_media_and_interactive() {
        let image = parse(r#"{"messaging_product":"whatsapp","to":"16505551234","type":"image","image":{"id":"9","caption":"Receipt"}}"#).unwrap();
        assert_eq!(
            image.message,
            Message::Media {
                kind: MediaKind::Image,
                caption: Some("Receipt".into())
            }
        );
        let buttons = parse(
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"interactive",
         "interactive":{"type":"button","body":{"text":"Keep your 9am slot?"},
          "action":{"buttons":[{"type":"reply","reply":{"id":"keep","title":"Keep"}},
                               {"type":"reply","reply":{"id":"move","title":"Reschedule"}}]}}}"#,
        )
        .unwrap();
        assert_eq!(buttons.message, Message::Interactive);
    }

    #[test]
    fn every_send_type_of_metas_documentation_is_taken() {
        // One of each type and interactive kind in the platform doc's sections 5 and 8, with
        // the envelope's optional keys.
        let bodies = [
            r#""type":"text","text":{"preview_url":true,"body":"See https://example.com"}"#,
            r#""type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[
               {"type":"header","parameters":[{"type":"location","location":{"latitude":"1","longitude":"2","name":"Shop","address":"Main St"}}]},
               {"type":"body","parameters":[{"type":"text","text":"Ana"},
                 {"type":"currency","currency":{"fallback_value":"$10.99","code":"USD","amount_1000":10990}},
                 {"type":"date_time","date_time":{"fallback_value":"May 1, 2026"}}]},
               {"type":"button","sub_type":"copy_code","index":"0","parameters":[{"type":"coupon_code","coupon_code":"SAVE20"}]},
               {"type":"button","sub_type":"url","index":"1","parameters":[{"type":"text","text":"abc"}]}]}"#,
            r#""type":"image","image":{"id":"1234567890","caption":"Receipt"}"#,
            r#""type":"document","document":{"link":"https://example.com/inv.pdf","filename":"inv.pdf","caption":"Invoice"}"#,
            r#""type":"video","video":{"id":"1","caption":"Tour"}"#,
            r#""type":"audio","audio":{"link":"https://example.com/a.ogg"}"#,
            r#""type":"sticker","sticker":{"id":"2"}"#,
            r#""type":"location","location":{"latitude":"37.48","longitude":"-122.14","name":"HQ","address":"1 Hacker Way"}"#,
            r#""type":"contacts","contacts":[{"name":{"formatted_name":"Ana Lima","first_name":"Ana"},"phones":[{"phone":"+16505551234","type":"CELL"}]}]"#,
            r#""type":"reaction","reaction":{"message_id":"wamid.X","emoji":"👍"}"#,
            r#""type":"interactive","interactive":{"type":"button","body":{"text":"Keep your 9am slot?"},"action":{"buttons":[{"type":"reply","reply":{"id":"keep","title":"Keep"}}]}}"#,
            r#""type":"interactive","interactive":{"type":"list","body":{"text":"Pick one"},"action":{"button":"Options","sections":[{"title":"Fast","rows":[{"id":"x","title":"Express"}]}]}}"#,
            r#""type":"interactive","interactive":{"type":"cta_url","body":{"text":"Track"},"action":{"name":"cta_url","parameters":{"display_text":"Track","url":"https://example.com"}}}"#,
            r#""type":"interactive","interactive":{"type":"flow","body":{"text":"Book"},"action":{"name":"flow","parameters":{"flow_id":"1","flow_cta":"Book"}}}"#,
            r#""type":"interactive","interactive":{"type":"location_request_message","body":{"text":"Where are you?"},"action":{"name":"send_location"}}"#,
            r#""type":"interactive","interactive":{"type":"address_message","body":{"text":"Your address?"},"action":{"name":"address_message"}}"#,
            r#""type":"interactive","interactive":{"type":"product","action":{"catalog_id":"1","product_retailer_id":"sku"}}"#,
            r#""type":"interactive","interactive":{"type":"product_list","header":{"type":"text","text":"Picks"},"body":{"text":"For you"},"action":{"catalog_id":"1","sections":[{"title":"A","product_items":[{"product_retailer_id":"sku"}]}]}}"#,
            r#""type":"interactive","interactive":{"type":"catalog_message","body":{"text":"Browse"},"action":{"name":"catalog_message"}}"#,
        ];
        for body in bodies {
            let request = format!(
                r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234",
                "context":{{"message_id":"wamid.prev"}},"biz_opaque_callback_data":"c-1",{body}}}"#
            );
            let sent = parse(&request).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(
                sent.biz_opaque_callback_data.as_deref(),
                Some("c-1"),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_requests_get_metas_codes() {
        let cases = [
            ("not json", 100),
            (r#"[1,2]"#, 100),
            (
                r#"{"messaging_product":"sms","to":"+16505551234","type":"text","text":{"body":"x"}}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+1650555","type":"text","text":{"body":"x"}}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"x"},"colour":"red"}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text"}"#,
                131_008,
            ),
            (
                r#"{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}"#,
                131_008,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"  "}}"#,
                131_008,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"fax","fax":{}}"#,
                131_051,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"name":"x"}}"#,
                131_008,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"name":"x","language":{"code":"en"},"components":[{"type":"footer"}]}}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"interactive","interactive":{"type":"button","action":{"buttons":[1,2,3,4]}}}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","recipient_type":"group","to":" ","type":"text","text":{"body":"x"}}"#,
                100,
            ),
            (
                r#"{"messaging_product":"whatsapp","recipient_type":"broadcast","to":"1","type":"text","text":{"body":"x"}}"#,
                100,
            ),
        ];
        for (body, code) in cases {
            let error = parse(body).expect_err(body);
            assert_eq!(error.code, code, "{body}: {error:?}");
            assert_eq!(error.http_status, 400);
            assert!(!error.details.is_empty());
        }
    }

    #[test]
    fn a_send_to_a_group_is_kept_under_the_group_s_key_and_echoes_its_id() {
        let sent = parse(
            r#"{"messaging_product":"whatsapp","recipient_type":"group","to":"Y2FwaV9ncm91cDox","type":"text","text":{"body":"x"}}"#,
        )
        .unwrap();
        assert!(sent.to.is_group());
        assert_eq!(sent.to, Msisdn::of_group("Y2FwaV9ncm91cDox"));
        assert_eq!(sent.input, "Y2FwaV9ncm91cDox");
    }

    #[test]
    fn escaped_strings_are_read_as_written_and_documented_extras_are_allowed() {
        let sent = parse(
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text",
            "context":{"message_id":"wamid.1"},"biz_opaque_callback_data":"c\u00e9",
            "text":{"body":"say \"hi\"\n\u00e9t\u00e9"}}"#,
        )
        .unwrap();
        assert_eq!(sent.message, Message::text("say \"hi\"\n\u{e9}t\u{e9}"));
        assert_eq!(sent.biz_opaque_callback_data.as_deref(), Some("c\u{e9}"));
        let button = parse(
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template",
            "template":{"name":"t","language":{"code":"en"},"components":[
             {"type":"BUTTON","index":1,"parameters":[{"type":"coupon_code","coupon_code":"SAVE"}]}]}}"#,
        )
        .unwrap();
        let Message::Template(template) = button.message else {
            panic!("a template")
        };
        assert_eq!(
            template.buttons,
            [ButtonParam {
                index: 1,
                value: ButtonParamValue::CouponCode("SAVE".into())
            }]
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_and_null_counts_as_absent() {
        let error = parse(
            r#"{"messaging_product":"whatsapp","to":16505551234,"type":"text","text":{"body":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(error.code, 100);
        assert!(
            error.details.contains("request.to must be a string"),
            "{error:?}"
        );
        let error = parse(
            r#"{"messaging_product":"whatsapp","to":null,"type":"text","text":{"body":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (error.code, error.details.as_str()),
            (131_008, "request.to is required")
        );
        let error = parse(
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"x","bold":true}}"#,
        )
        .unwrap_err();
        assert_eq!(error.code, 100);
        assert!(
            error.details.starts_with("text: unknown field `bold`"),
            "{error:?}"
        );
    }

    /// The one-pass read answers as the read that keeps each body as written until its type
    /// is known: the same send, or the same error (code and words), whichever key order, and
    /// whatever the other type's body holds.
    #[test]
    fn the_one_pass_read_answers_as_the_read_of_bodies_kept_as_written() {
        let template = r#"{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]}"#;
        let bodies = [
            format!(r#"{{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{template}}}"#),
            format!(r#"{{"template":{template},"type":"template","to":"+16505551234","messaging_product":"whatsapp"}}"#),
            // Another type's body that does not read is no error: it is never read.
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"x"},"template":{"colour":1}}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","text":{"bold":true},"template":{"name":"t","language":{"code":"en"}}}"#.to_string(),
            // Which error is said first: the unknown type, the unknown key, the product.
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"fax","template":{"colour":1}}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"colour":1},"colour":"red"}"#.to_string(),
            r#"{"messaging_product":"sms","to":"+16505551234","type":"template","template":{"name":7}}"#.to_string(),
            // A malformed body of the send's own type, in each place.
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"name":"t","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text","text":5}]}]}}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"template","template":{"name":"t","language":"en"}}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":["x"]}}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"x","bold":true}}"#.to_string(),
            // The same key twice: the last one counts, read either way.
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":1},"text":{"body":"y"}}"#.to_string(),
            // Not JSON after the body, and escapes inside it.
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"x"}"#.to_string(),
            r#"{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"\u00e9\n"}}"#.to_string(),
        ];
        for body in &bodies {
            let kept = read_body(body.as_bytes()).and_then(send_from);
            assert_eq!(parse(body), kept, "{body}");
        }
        assert_eq!(
            (TYPES[TEXT_SLOT], TYPES[TEMPLATE_SLOT]),
            ("text", "template")
        );
    }
}
