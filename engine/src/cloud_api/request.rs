//! Meta's send request (`POST /{version}/{phone_number_id}/messages`), parsed into what the
//! rules need, with Meta's errors for what is malformed.
//!
//! Only the fields Meta documents are accepted; an unknown one is refused (code 100), as Meta
//! refuses it, so a typo never reaches the upstream.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::decision::Message;
use crate::ids::Msisdn;
use crate::template::model::{
    ButtonParam, ButtonParamValue, HeaderParam, MediaKind, TemplateSend, TextParam,
};

/// A send request as wagate understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSend {
    /// The recipient as the caller wrote it (echoed in `contacts[].input`).
    pub input: String,
    pub to: Msisdn,
    pub message: Message,
    pub biz_opaque_callback_data: Option<String>,
}

/// The envelope's keys, then (from index 7) the message types, each also a key.
const TOP_LEVEL: &[&str] = &[
    "messaging_product",
    "recipient_type",
    "to",
    "type",
    "context",
    "biz_opaque_callback_data",
    "recipient_identity_key_hash",
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

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::invalid_parameter(format!("{path} must be an object")))
}

fn only(map: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ApiError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(ApiError::invalid_parameter(format!(
            "unexpected key {path}.{key}"
        ))),
        None => Ok(()),
    }
}

fn string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::invalid_parameter(format!(
            "{path}.{key} must be a string"
        ))),
    }
}

fn required<'a>(map: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ApiError> {
    string(map, key, path)?
        .ok_or_else(|| ApiError::missing_parameter(format!("{path}.{key} is required")))
}

fn array<'a>(map: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a [Value], ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::invalid_parameter(format!(
            "{path}.{key} must be an array"
        ))),
    }
}

/// Parses a send request body for `phone_number_id`.
pub fn parse_send(body: &[u8]) -> Result<ParsedSend, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_parameter(format!("the body is not valid JSON: {e}")))?;
    let top = object(&value, "request")?;
    let kind = string(top, "type", "request")?.unwrap_or("text");
    if !TOP_LEVEL[7..].contains(&kind) {
        return Err(ApiError::new(
            400,
            131_051,
            "Unsupported message type",
            format!("type \"{kind}\""),
            "unsupported_type",
        ));
    }
    only(top, TOP_LEVEL, "request")?;
    match required(top, "messaging_product", "request")? {
        "whatsapp" => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "messaging_product must be \"whatsapp\", not \"{other}\""
            )))
        }
    }
    match string(top, "recipient_type", "request")?.unwrap_or("individual") {
        "individual" => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "recipient_type \"{other}\" is not supported by wagate yet"
            )))
        }
    }
    let input = required(top, "to", "request")?.to_string();
    let to = Msisdn::parse(&input).map_err(|e| ApiError::invalid_parameter(format!("to: {e}")))?;
    let body_of = |key: &str| {
        top.get(key).ok_or_else(|| {
            ApiError::missing_parameter(format!("type is {kind} but request.{key} is missing"))
        })
    };
    let message = match kind {
        "text" => parse_text(body_of("text")?)?,
        "template" => Message::Template(parse_template(body_of("template")?)?),
        "image" => parse_media(body_of("image")?, MediaKind::Image, "image")?,
        "document" => parse_media(body_of("document")?, MediaKind::Document, "document")?,
        "video" => parse_media(body_of("video")?, MediaKind::Video, "video")?,
        "interactive" => parse_interactive(body_of("interactive")?)?,
        "audio" | "sticker" | "location" | "contacts" | "reaction" => {
            body_of(kind)?;
            Message::Other
        }
        other => unreachable!("type {other} was checked against TOP_LEVEL"),
    };
    let biz_opaque_callback_data =
        string(top, "biz_opaque_callback_data", "request")?.map(str::to_string);
    if biz_opaque_callback_data
        .as_ref()
        .is_some_and(|d| d.chars().count() > 512)
    {
        return Err(ApiError::invalid_parameter(
            "biz_opaque_callback_data is longer than 512 characters",
        ));
    }
    Ok(ParsedSend {
        input,
        to,
        message,
        biz_opaque_callback_data,
    })
}

fn parse_text(value: &Value) -> Result<Message, ApiError> {
    let text = object(value, "text")?;
    only(text, &["body", "preview_url"], "text")?;
    let body = required(text, "body", "text")?;
    if body.trim().is_empty() {
        return Err(ApiError::missing_parameter("text.body is empty"));
    }
    Ok(Message::text(body))
}

fn parse_media(value: &Value, kind: MediaKind, path: &str) -> Result<Message, ApiError> {
    let media = object(value, path)?;
    only(media, &["id", "link", "caption", "filename"], path)?;
    if string(media, "id", path)?.is_none() && string(media, "link", path)?.is_none() {
        return Err(ApiError::missing_parameter(format!(
            "{path} needs an id or a link"
        )));
    }
    Ok(Message::Media {
        kind,
        caption: string(media, "caption", path)?.map(str::to_string),
    })
}

fn parse_interactive(value: &Value) -> Result<Message, ApiError> {
    let interactive = object(value, "interactive")?;
    let kind = required(interactive, "type", "interactive")?;
    let action = interactive
        .get("action")
        .map(|a| object(a, "interactive.action"))
        .transpose()?;
    match kind {
        "button" => {
            let buttons =
                action.map_or(Ok(&[][..]), |a| array(a, "buttons", "interactive.action"))?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(ApiError::invalid_parameter(format!(
                    "reply buttons: {} given, 1 to 3 allowed",
                    buttons.len()
                )));
            }
            for (i, button) in buttons.iter().enumerate() {
                let path = format!("interactive.action.buttons[{i}]");
                let reply = object(button, &path)?.get("reply").ok_or_else(|| {
                    ApiError::missing_parameter(format!("{path}.reply is required"))
                })?;
                let title = required(object(reply, &path)?, "title", &path)?;
                if title.chars().count() > 20 {
                    return Err(ApiError::invalid_parameter(format!(
                        "{path}.reply.title is longer than 20 characters"
                    )));
                }
            }
        }
        "list" => {
            let sections =
                action.map_or(Ok(&[][..]), |a| array(a, "sections", "interactive.action"))?;
            let rows: usize = sections
                .iter()
                .map(|s| s.get("rows").and_then(Value::as_array).map_or(0, Vec::len))
                .sum();
            if sections.is_empty() || sections.len() > 10 || rows == 0 || rows > 10 {
                return Err(ApiError::invalid_parameter(format!(
                    "list: {} sections and {rows} rows; at most 10 of each, at least 1",
                    sections.len()
                )));
            }
        }
        "cta_url"
        | "flow"
        | "product"
        | "product_list"
        | "catalog_message"
        | "location_request_message"
        | "address_message" => {}
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "interactive.type \"{other}\" is not known"
            )))
        }
    }
    Ok(Message::Interactive)
}

fn parse_template(value: &Value) -> Result<TemplateSend, ApiError> {
    let template = object(value, "template")?;
    only(template, &["name", "language", "components"], "template")?;
    let name = required(template, "name", "template")?;
    let language = template
        .get("language")
        .ok_or_else(|| ApiError::missing_parameter("template.language is required"))?;
    let language = required(
        object(language, "template.language")?,
        "code",
        "template.language",
    )?;
    let mut send = TemplateSend::new(name, language, Vec::new());
    for (i, component) in array(template, "components", "template")?
        .iter()
        .enumerate()
    {
        let path = format!("template.components[{i}]");
        let component = object(component, &path)?;
        let parameters = array(component, "parameters", &path)?;
        match required(component, "type", &path)?
            .to_ascii_lowercase()
            .as_str()
        {
            "header" => {
                let [parameter] = parameters else {
                    return Err(ApiError::invalid_parameter(format!(
                        "{path}: a header takes exactly one parameter"
                    )));
                };
                send.header = Some(header_parameter(
                    parameter,
                    &format!("{path}.parameters[0]"),
                )?);
            }
            "body" => {
                for (j, parameter) in parameters.iter().enumerate() {
                    send.body.push(text_parameter(
                        parameter,
                        &format!("{path}.parameters[{j}]"),
                    )?);
                }
            }
            "button" => {
                let index = match component.get("index") {
                    Some(Value::String(text)) => text.parse::<usize>().ok(),
                    Some(Value::Number(number)) => number.as_u64().map(|n| n as usize),
                    _ => None,
                }
                .ok_or_else(|| {
                    ApiError::missing_parameter(format!("{path}.index is required (0 to 9)"))
                })?;
                for (j, parameter) in parameters.iter().enumerate() {
                    let value = button_parameter(parameter, &format!("{path}.parameters[{j}]"))?;
                    send.buttons.push(ButtonParam { index, value });
                }
            }
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "{path}.type \"{other}\" is not header, body or button"
                )))
            }
        }
    }
    Ok(send)
}

fn text_parameter(value: &Value, path: &str) -> Result<TextParam, ApiError> {
    let parameter = object(value, path)?;
    let name = string(parameter, "parameter_name", path)?.map(str::to_string);
    let text = match required(parameter, "type", path)? {
        "text" => required(parameter, "text", path)?.to_string(),
        kind @ ("currency" | "date_time") => {
            let inner = parameter
                .get(kind)
                .ok_or_else(|| ApiError::missing_parameter(format!("{path}.{kind} is required")))?;
            required(
                object(inner, path)?,
                "fallback_value",
                &format!("{path}.{kind}"),
            )?
            .to_string()
        }
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "{path}.type \"{other}\" is not text, currency or date_time"
            )))
        }
    };
    Ok(TextParam { name, text })
}

fn header_parameter(value: &Value, path: &str) -> Result<HeaderParam, ApiError> {
    let parameter = object(value, path)?;
    let kind = required(parameter, "type", path)?;
    let media = |kind: MediaKind| -> Result<HeaderParam, ApiError> {
        let inner = parameter.get(kind.name()).ok_or_else(|| {
            ApiError::missing_parameter(format!("{path}.{} is required", kind.name()))
        })?;
        let inner = object(inner, path)?;
        let link = string(inner, "link", path)?.map(str::to_string);
        if link.is_none() && string(inner, "id", path)?.is_none() {
            return Err(ApiError::missing_parameter(format!(
                "{path}.{} needs an id or a link",
                kind.name()
            )));
        }
        Ok(HeaderParam::Media { kind, link })
    };
    match kind {
        "text" => Ok(HeaderParam::Text(text_parameter(value, path)?)),
        "image" => media(MediaKind::Image),
        "document" => media(MediaKind::Document),
        "video" => media(MediaKind::Video),
        "location" => Ok(HeaderParam::Location),
        other => Err(ApiError::invalid_parameter(format!(
            "{path}.type \"{other}\" is not a header parameter"
        ))),
    }
}

fn button_parameter(value: &Value, path: &str) -> Result<ButtonParamValue, ApiError> {
    let parameter = object(value, path)?;
    Ok(match required(parameter, "type", path)? {
        "payload" => ButtonParamValue::Payload(required(parameter, "payload", path)?.to_string()),
        "text" => ButtonParamValue::UrlSuffix(required(parameter, "text", path)?.to_string()),
        "coupon_code" => {
            ButtonParamValue::CouponCode(required(parameter, "coupon_code", path)?.to_string())
        }
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "{path}.type \"{other}\" is not payload, text or coupon_code"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                r#"{"messaging_product":"whatsapp","recipient_type":"group","to":"120363","type":"text","text":{"body":"x"}}"#,
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
}
