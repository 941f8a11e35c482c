//! Meta's template creation request (`POST /{waba_id}/message_templates`): name, language,
//! category, parameter format and components (HEADER, BODY, FOOTER, BUTTONS), read into the
//! definition wagate's lint and registry know. What Meta would refuse as malformed is refused
//! here with Meta's code 100; what Meta's review would reject is the lint's to say.

use serde_json::Value;

use crate::error::ApiError;
use wagate_rules::ids::AccountId;
use wagate_rules::template::model::{
    ButtonSpec, Category, HeaderSpec, MediaKind, ParameterFormat, TemplateDefinition,
};

/// The template a creation request asks for, as the business `account`'s.
pub fn parse_template_create(
    account: AccountId,
    body: &[u8],
) -> Result<TemplateDefinition, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_parameter(format!("the body is not valid JSON: {e}")))?;
    let text = |key: &str| {
        json[key]
            .as_str()
            .ok_or_else(|| ApiError::missing_parameter(format!("{key} is required")))
    };
    let (name, language) = (text("name")?, text("language")?);
    let category = text("category")?;
    let category = match Category::parse(category) {
        Some(Category::Service) | None => {
            return Err(ApiError::invalid_parameter(format!(
                "category must be MARKETING, UTILITY or AUTHENTICATION, not {category:?}"
            )))
        }
        Some(category) => category,
    };
    let mut definition = TemplateDefinition::new(account, name, language, category, "");
    definition.parameter_format = match json["parameter_format"].as_str() {
        None => ParameterFormat::Positional,
        Some(format) if format.eq_ignore_ascii_case("positional") => ParameterFormat::Positional,
        Some(format) if format.eq_ignore_ascii_case("named") => ParameterFormat::Named,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "parameter_format must be POSITIONAL or NAMED, not {other:?}"
            )))
        }
    };
    let components = json["components"]
        .as_array()
        .ok_or_else(|| ApiError::missing_parameter("components is required"))?;
    let mut body_text = None;
    for component in components {
        let kind = component["type"].as_str().unwrap_or_default();
        match kind.to_ascii_uppercase().as_str() {
            "HEADER" => definition.headers.push(header(component)?),
            "BODY" => body_text = Some(component_text(component, "BODY")?.to_string()),
            "FOOTER" => definition.footer = Some(component_text(component, "FOOTER")?.to_string()),
            "BUTTONS" => {
                let buttons = component["buttons"].as_array().ok_or_else(|| {
                    ApiError::missing_parameter("a BUTTONS component needs buttons")
                })?;
                for each in buttons {
                    definition.buttons.push(button(each)?);
                }
            }
            _ => {
                return Err(ApiError::invalid_parameter(format!(
                    "component type must be HEADER, BODY, FOOTER or BUTTONS, not {kind:?}"
                )))
            }
        }
    }
    definition.body = body_text
        .ok_or_else(|| ApiError::missing_parameter("a template needs a BODY component"))?;
    if let Some(ttl) = json
        .get("message_send_ttl_seconds")
        .filter(|v| !v.is_null())
    {
        let (_, range) = category.ttl_secs();
        let ttl = ttl
            .as_u64()
            .and_then(|ttl| u32::try_from(ttl).ok())
            .filter(|ttl| range.contains(ttl))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "message_send_ttl_seconds for a {} template is {} to {} seconds",
                    category.name(),
                    range.start(),
                    range.end()
                ))
            })?;
        definition.message_send_ttl_seconds = Some(ttl);
    }
    Ok(definition)
}

fn component_text<'a>(component: &'a Value, kind: &str) -> Result<&'a str, ApiError> {
    component["text"]
        .as_str()
        .ok_or_else(|| ApiError::missing_parameter(format!("the {kind} component needs text")))
}

fn header(component: &Value) -> Result<HeaderSpec, ApiError> {
    let format = component["format"].as_str().unwrap_or("TEXT");
    Ok(match format.to_ascii_uppercase().as_str() {
        "TEXT" => HeaderSpec::Text(component_text(component, "HEADER")?.to_string()),
        "IMAGE" => HeaderSpec::Media(MediaKind::Image),
        "VIDEO" => HeaderSpec::Media(MediaKind::Video),
        "DOCUMENT" => HeaderSpec::Media(MediaKind::Document),
        "LOCATION" => HeaderSpec::Location,
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "header format must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION, not {other:?}"
            )))
        }
    })
}

fn button(button: &Value) -> Result<ButtonSpec, ApiError> {
    let field = |key: &str| {
        button[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::missing_parameter(format!("a button needs {key}")))
    };
    let kind = button["type"].as_str().unwrap_or_default();
    Ok(match kind.to_ascii_uppercase().as_str() {
        "QUICK_REPLY" => ButtonSpec::QuickReply {
            text: field("text")?,
        },
        "URL" => ButtonSpec::Url {
            text: field("text")?,
            url: field("url")?,
        },
        "PHONE_NUMBER" => ButtonSpec::PhoneNumber {
            text: field("text")?,
            phone_number: field("phone_number")?,
        },
        "COPY_CODE" => ButtonSpec::CopyCode {
            example: field("example")?,
        },
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "button type must be QUICK_REPLY, URL, PHONE_NUMBER or COPY_CODE, not {other:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_to_live_is_kept_within_its_categorys_range() {
        let create = |category: &str, ttl: &str| {
            let body = format!(
                r#"{{"name":"code","language":"en_US","category":"{category}",
                   "message_send_ttl_seconds":{ttl},
                   "components":[{{"type":"BODY","text":"Your code is {{{{1}}}}."}}]}}"#
            );
            parse_template_create(AccountId(7), body.as_bytes())
        };
        let code = create("AUTHENTICATION", "300").unwrap();
        assert_eq!(
            (code.message_send_ttl_seconds, code.ttl_secs()),
            (Some(300), 300)
        );
        assert_eq!(create("UTILITY", "null").unwrap().ttl_secs(), 30 * 86_400);
        assert_eq!(create("AUTHENTICATION", "null").unwrap().ttl_secs(), 600);
        for (category, ttl) in [
            ("AUTHENTICATION", "901"),
            ("UTILITY", "29"),
            ("MARKETING", "3600"),
            ("UTILITY", "\"600\""),
        ] {
            assert!(create(category, ttl).is_err(), "{category} {ttl}");
        }
    }

    #[test]
    fn metas_documented_creation_request_is_read_whole() {
        let body = br#"{"name":"order_update","language":"en_US","category":"UTILITY",
          "components":[
            {"type":"HEADER","format":"TEXT","text":"Order {{1}}","example":{"header_text":["17"]}},
            {"type":"BODY","text":"Hi {{1}}, your order shipped.","example":{"body_text":[["Ana"]]}},
            {"type":"FOOTER","text":"Acme"},
            {"type":"BUTTONS","buttons":[
              {"type":"QUICK_REPLY","text":"Stop"},
              {"type":"URL","text":"Track","url":"https://acme.example/t/{{1}}"},
              {"type":"PHONE_NUMBER","text":"Call","phone_number":"+15550100"},
              {"type":"COPY_CODE","example":"SAVE20"}]}]}"#;
        let definition = parse_template_create(AccountId(7), body).unwrap();
        assert_eq!(
            (
                definition.account,
                definition.name.as_str(),
                definition.language.as_str()
            ),
            (AccountId(7), "order_update", "en_US")
        );
        assert_eq!(definition.category, Category::Utility);
        assert_eq!(definition.body, "Hi {{1}}, your order shipped.");
        assert_eq!(
            definition.headers,
            vec![HeaderSpec::Text("Order {{1}}".into())]
        );
        assert_eq!(definition.footer.as_deref(), Some("Acme"));
        assert_eq!(definition.buttons.len(), 4);
        assert_eq!(
            definition.buttons[1],
            ButtonSpec::Url {
                text: "Track".into(),
                url: "https://acme.example/t/{{1}}".into()
            }
        );
    }

    #[test]
    fn what_meta_would_refuse_as_malformed_is_refused_here() {
        for (body, says) in [
            (
                r#"{"language":"en_US","category":"UTILITY","components":[]}"#,
                "name",
            ),
            (
                r#"{"name":"a","language":"en_US","category":"SERVICE","components":[]}"#,
                "category",
            ),
            (
                r#"{"name":"a","language":"en_US","category":"UTILITY","components":[]}"#,
                "BODY",
            ),
            (
                r#"{"name":"a","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"CAROUSEL"}]}"#,
                "CAROUSEL",
            ),
            (
                r#"{"name":"a","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"t"}]}]}"#,
                "url",
            ),
            ("not json", "JSON"),
        ] {
            let refused = parse_template_create(AccountId(1), body.as_bytes()).expect_err(body);
            assert!(refused.to_string().contains(says), "{body}: {refused}");
        }
    }
}
