//! A template send's body: name, language, and the parameters of its header, body and buttons,
//! which the template rules check against the approved template.

use std::fmt;

use serde::de::{Deserializer, Error, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::json_text::{read_part, required, text, Text};
use wagate_rules::template::model::{
    ButtonParam, ButtonParamValue, HeaderParam, MediaKind, TemplateSend, TextParam,
};

/// A template send's body as written: read typed at its key in the envelope's pass, or from
/// the body kept as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TemplateBody<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    language: Option<Language<'a>>,
    #[serde(borrow)]
    components: Option<Vec<Component<'a>>>,
}

#[derive(Deserialize)]
struct Language<'a> {
    #[serde(borrow)]
    code: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Component<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    parameters: Option<Vec<Parameter<'a>>>,
    index: Option<ButtonIndex>,
}

/// One parameter of any component: which fields matter depends on its `type`.
#[derive(Deserialize)]
struct Parameter<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    parameter_name: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    payload: Option<Text<'a>>,
    #[serde(borrow)]
    coupon_code: Option<Text<'a>>,
    #[serde(borrow)]
    currency: Option<Fallback<'a>>,
    #[serde(borrow)]
    date_time: Option<Fallback<'a>>,
    #[serde(borrow)]
    image: Option<MediaRef<'a>>,
    #[serde(borrow)]
    document: Option<MediaRef<'a>>,
    #[serde(borrow)]
    video: Option<MediaRef<'a>>,
}

#[derive(Deserialize)]
struct Fallback<'a> {
    #[serde(borrow)]
    fallback_value: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct MediaRef<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    link: Option<Text<'a>>,
}

/// A button's position, which Meta documents as a string ("0") and callers also send as a
/// number; `None` when it is neither a small number nor a string of one.
struct ButtonIndex(Option<usize>);

impl<'de> Deserialize<'de> for ButtonIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ButtonIndexVisitor)
    }
}

struct ButtonIndexVisitor;

impl Visitor<'_> for ButtonIndexVisitor {
    type Value = ButtonIndex;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a button index, as a string or a number")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<ButtonIndex, E> {
        Ok(ButtonIndex(text.parse().ok()))
    }

    fn visit_u64<E: Error>(self, number: u64) -> Result<ButtonIndex, E> {
        Ok(ButtonIndex(usize::try_from(number).ok()))
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<ButtonIndex, E> {
        Ok(ButtonIndex(None))
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<ButtonIndex, E> {
        Ok(ButtonIndex(None))
    }
}

/// Where in the template a parameter sits, written out only for an error.
#[derive(Clone, Copy)]
struct Path {
    component: usize,
    parameter: Option<usize>,
}

impl Path {
    fn parameter(self, parameter: usize) -> Path {
        Path {
            parameter: Some(parameter),
            ..self
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "template.components[{}]", self.component)?;
        match self.parameter {
            Some(parameter) => write!(formatter, ".parameters[{parameter}]"),
            None => Ok(()),
        }
    }
}

/// A component's `type`, which Meta reads in any case ("body", "BODY").
enum ComponentKind {
    Header,
    Body,
    Button,
}

impl ComponentKind {
    fn of(kind: &str) -> Option<ComponentKind> {
        [
            ("header", ComponentKind::Header),
            ("body", ComponentKind::Body),
            ("button", ComponentKind::Button),
        ]
        .into_iter()
        .find_map(|(name, known)| kind.eq_ignore_ascii_case(name).then_some(known))
    }
}

pub(super) fn parse_template(raw: &RawValue) -> Result<TemplateSend, ApiError> {
    template_send(read_part(raw, "template")?)
}

/// What the rules check of a template send, from its body read.
pub(super) fn template_send(template: TemplateBody) -> Result<TemplateSend, ApiError> {
    let name = required(&template.name, "template", "name")?;
    let language = template
        .language
        .as_ref()
        .ok_or_else(|| ApiError::missing_parameter("template.language is required"))?;
    let language = required(&language.code, "template.language", "code")?;
    let mut send = TemplateSend::new(name, language, Vec::new());
    for (i, component) in template.components.iter().flatten().enumerate() {
        let path = Path {
            component: i,
            parameter: None,
        };
        let parameters = component.parameters.as_deref().unwrap_or(&[]);
        let kind = required(&component.kind, path, "type")?;
        match ComponentKind::of(kind) {
            Some(ComponentKind::Header) => {
                let [parameter] = parameters else {
                    return Err(ApiError::invalid_parameter(format!(
                        "{path}: a header takes exactly one parameter"
                    )));
                };
                send.header = Some(header_parameter(parameter, path.parameter(0))?);
            }
            Some(ComponentKind::Body) => {
                for (j, parameter) in parameters.iter().enumerate() {
                    send.body
                        .push(text_parameter(parameter, path.parameter(j))?);
                }
            }
            Some(ComponentKind::Button) => {
                let index = component
                    .index
                    .as_ref()
                    .and_then(|index| index.0)
                    .ok_or_else(|| {
                        ApiError::missing_parameter(format!("{path}.index is required (0 to 9)"))
                    })?;
                for (j, parameter) in parameters.iter().enumerate() {
                    let value = button_parameter(parameter, path.parameter(j))?;
                    send.buttons.push(ButtonParam { index, value });
                }
            }
            None => {
                return Err(ApiError::invalid_parameter(format!(
                    "{path}.type \"{kind}\" is not header, body or button"
                )))
            }
        }
    }
    Ok(send)
}

fn text_parameter(parameter: &Parameter, path: Path) -> Result<TextParam, ApiError> {
    let fallback = |kind: &str, given: &Option<Fallback>| -> Result<String, ApiError> {
        let given = given
            .as_ref()
            .ok_or_else(|| ApiError::missing_parameter(format!("{path}.{kind} is required")))?;
        required(
            &given.fallback_value,
            format_args!("{path}.{kind}"),
            "fallback_value",
        )
        .map(str::to_string)
    };
    let value = match required(&parameter.kind, path, "type")? {
        "text" => required(&parameter.text, path, "text")?.to_string(),
        "currency" => fallback("currency", &parameter.currency)?,
        "date_time" => fallback("date_time", &parameter.date_time)?,
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "{path}.type \"{other}\" is not text, currency or date_time"
            )))
        }
    };
    Ok(TextParam {
        name: text(&parameter.parameter_name).map(str::to_string),
        text: value,
    })
}

fn header_parameter(parameter: &Parameter, path: Path) -> Result<HeaderParam, ApiError> {
    let media = |kind: MediaKind, given: &Option<MediaRef>| -> Result<HeaderParam, ApiError> {
        let given = given.as_ref().ok_or_else(|| {
            ApiError::missing_parameter(format!("{path}.{} is required", kind.name()))
        })?;
        if given.link.is_none() && given.id.is_none() {
            return Err(ApiError::missing_parameter(format!(
                "{path}.{} needs an id or a link",
                kind.name()
            )));
        }
        Ok(HeaderParam::Media {
            kind,
            link: text(&given.link).map(str::to_string),
        })
    };
    match required(&parameter.kind, path, "type")? {
        "text" => Ok(HeaderParam::Text(text_parameter(parameter, path)?)),
        "image" => media(MediaKind::Image, &parameter.image),
        "document" => media(MediaKind::Document, &parameter.document),
        "video" => media(MediaKind::Video, &parameter.video),
        "location" => Ok(HeaderParam::Location),
        other => Err(ApiError::invalid_parameter(format!(
            "{path}.type \"{other}\" is not a header parameter"
        ))),
    }
}

fn button_parameter(parameter: &Parameter, path: Path) -> Result<ButtonParamValue, ApiError> {
    let given = |field: &Option<Text>, key: &str| -> Result<String, ApiError> {
        required(field, path, key).map(str::to_string)
    };
    Ok(match required(&parameter.kind, path, "type")? {
        "payload" => ButtonParamValue::Payload(given(&parameter.payload, "payload")?),
        "text" => ButtonParamValue::UrlSuffix(given(&parameter.text, "text")?),
        "coupon_code" => {
            ButtonParamValue::CouponCode(given(&parameter.coupon_code, "coupon_code")?)
        }
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "{path}.type \"{other}\" is not payload, text or coupon_code"
            )))
        }
    })
}
