//! The bodies of the non-template message types wagate reads: text, media and interactive.
//! Only what the rules need is kept; the rest is checked for shape and left for Meta.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::json_text::{read_part, required, Text};
use wagate_rules::decision::Message;
use wagate_rules::template::model::MediaKind;

/// A text send's body as written (read at its key in the envelope's pass, or from the body
/// kept as written).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TextBody<'a> {
    #[serde(borrow)]
    body: Option<Text<'a>>,
    #[serde(rename = "preview_url")]
    _preview_url: Option<IgnoredAny>,
}

pub(super) fn parse_text(raw: &RawValue) -> Result<Message, ApiError> {
    text_message(read_part(raw, "text")?)
}

/// The message of a text send, from its body read.
pub(super) fn text_message(text: TextBody) -> Result<Message, ApiError> {
    let body = required(&text.body, "text", "body")?;
    if body.trim().is_empty() {
        return Err(ApiError::missing_parameter("text.body is empty"));
    }
    Ok(Message::text(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    link: Option<Text<'a>>,
    #[serde(borrow)]
    caption: Option<Text<'a>>,
    #[serde(rename = "filename")]
    _filename: Option<IgnoredAny>,
}

pub(super) fn parse_media(raw: &RawValue, kind: MediaKind) -> Result<Message, ApiError> {
    let path = kind.name();
    let media: MediaBody = read_part(raw, path)?;
    if media.id.is_none() && media.link.is_none() {
        return Err(ApiError::missing_parameter(format!(
            "{path} needs an id or a link"
        )));
    }
    Ok(Message::Media {
        kind,
        caption: media.caption.map(Text::into_string),
    })
}

#[derive(Deserialize)]
struct InteractiveBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    action: Option<Action<'a>>,
}

#[derive(Deserialize)]
struct Action<'a> {
    #[serde(borrow)]
    buttons: Option<Vec<ReplyButton<'a>>>,
    sections: Option<Vec<Section>>,
}

#[derive(Deserialize)]
struct ReplyButton<'a> {
    #[serde(borrow)]
    reply: Option<Reply<'a>>,
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    title: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Section {
    rows: Option<Vec<IgnoredAny>>,
}

pub(super) fn parse_interactive(raw: &RawValue) -> Result<Message, ApiError> {
    let interactive: InteractiveBody = read_part(raw, "interactive")?;
    let action = interactive.action.as_ref();
    match required(&interactive.kind, "interactive", "type")? {
        "button" => {
            let buttons = action.and_then(|a| a.buttons.as_deref()).unwrap_or(&[]);
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(ApiError::invalid_parameter(format!(
                    "reply buttons: {} given, 1 to 3 allowed",
                    buttons.len()
                )));
            }
            for (i, button) in buttons.iter().enumerate() {
                let path = format!("interactive.action.buttons[{i}].reply");
                let reply = button
                    .reply
                    .as_ref()
                    .ok_or_else(|| ApiError::missing_parameter(format!("{path} is required")))?;
                let title = required(&reply.title, &path, "title")?;
                if title.chars().count() > 20 {
                    return Err(ApiError::invalid_parameter(format!(
                        "{path}.title is longer than 20 characters"
                    )));
                }
            }
        }
        "list" => {
            let sections = action.and_then(|a| a.sections.as_deref()).unwrap_or(&[]);
            let rows: usize = sections
                .iter()
                .map(|s| s.rows.as_ref().map_or(0, Vec::len))
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
