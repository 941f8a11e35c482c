//! What a template is (as submitted) and what a send of it supplies.

use serde::{Deserialize, Serialize};

use crate::ids::AccountId;

/// Pricing and policy category. Free-form messages are `Service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Marketing = 0,
    Utility = 1,
    Authentication = 2,
    Service = 3,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Marketing,
        Category::Utility,
        Category::Authentication,
        Category::Service,
    ];

    pub fn parse(text: &str) -> Option<Category> {
        match text.to_ascii_lowercase().as_str() {
            "marketing" => Some(Category::Marketing),
            "utility" => Some(Category::Utility),
            "authentication" => Some(Category::Authentication),
            "service" => Some(Category::Service),
            _ => None,
        }
    }

    /// Meta's time-to-live for a template of this category (`message_send_ttl_seconds`):
    /// its default and the range a template may set, in seconds.
    pub fn ttl_secs(self) -> (u32, std::ops::RangeInclusive<u32>) {
        const DAY: u32 = 86_400;
        match self {
            Category::Authentication => (600, 30..=900),
            Category::Utility => (30 * DAY, 30..=43_200),
            Category::Marketing => (30 * DAY, 43_200..=30 * DAY),
            Category::Service => (30 * DAY, 30 * DAY..=30 * DAY),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Utility => "utility",
            Category::Authentication => "authentication",
            Category::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`, ...
    #[default]
    Positional,
    /// `{{first_name}}`, ...
    Named,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaKind {
    Image,
    Document,
    Video,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Video => "video",
        }
    }

    /// File endings Meta accepts for this kind of template header.
    pub fn allowed_extensions(self) -> &'static [&'static str] {
        match self {
            MediaKind::Image => &["jpg", "jpeg", "png"],
            MediaKind::Document => &["pdf"],
            MediaKind::Video => &["mp4", "3gp"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderSpec {
    Text(String),
    Media(MediaKind),
    Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ButtonSpec {
    QuickReply { text: String },
    Url { text: String, url: String },
    PhoneNumber { text: String, phone_number: String },
    CopyCode { example: String },
}

impl ButtonSpec {
    pub fn kind_name(&self) -> &'static str {
        match self {
            ButtonSpec::QuickReply { .. } => "quick_reply",
            ButtonSpec::Url { .. } => "url",
            ButtonSpec::PhoneNumber { .. } => "phone_number",
            ButtonSpec::CopyCode { .. } => "copy_code",
        }
    }
}

/// A template as submitted for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    pub account: AccountId,
    pub name: String,
    pub language: String,
    pub category: Category,
    #[serde(default)]
    pub parameter_format: ParameterFormat,
    /// Meta allows one header; more than one is kept so the lint can name the problem.
    #[serde(default)]
    pub headers: Vec<HeaderSpec>,
    pub body: String,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<ButtonSpec>,
    /// Meta's id for the template, once Meta named it (its answer to the creation, its list,
    /// its webhooks): how a call on `/{template_id}` finds it.
    #[serde(default)]
    pub meta_id: Option<u64>,
    /// A consent topic the operator named (`consent.topics`) besides its category's: a person
    /// who withdrew it gets none of this template.
    #[serde(default)]
    pub topic: Option<String>,
    /// Meta's time-to-live for its messages (`message_send_ttl_seconds`); the category's
    /// default when `None`. A send queued longer than this is dropped, never sent late.
    #[serde(default)]
    pub message_send_ttl_seconds: Option<u32>,
}

impl TemplateDefinition {
    /// How long its messages live: its own time-to-live, or its category's default.
    pub fn ttl_secs(&self) -> u32 {
        self.message_send_ttl_seconds
            .unwrap_or_else(|| self.category.ttl_secs().0)
    }

    /// A body-only template; fill the other fields as needed.
    pub fn new(
        account: AccountId,
        name: &str,
        language: &str,
        category: Category,
        body: &str,
    ) -> Self {
        TemplateDefinition {
            account,
            name: name.to_string(),
            language: language.to_string(),
            category,
            parameter_format: ParameterFormat::Positional,
            headers: Vec::new(),
            body: body.to_string(),
            footer: None,
            buttons: Vec::new(),
            meta_id: None,
            topic: None,
            message_send_ttl_seconds: None,
        }
    }
}

/// A `{{...}}` placeholder found in template text, with its byte span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

/// Every `{{name}}` in `text`, in order.
pub fn placeholders(text: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{") {
        let start = from + open;
        let Some(close) = text[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        found.push(Placeholder {
            name: text[start + 2..end - 2].trim().to_string(),
            start,
            end,
        });
        from = end;
    }
    found
}

/// The distinct parameter names of a text, in order of first appearance.
pub fn parameter_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for placeholder in placeholders(text) {
        if !names.contains(&placeholder.name) {
            names.push(placeholder.name);
        }
    }
    names
}

/// A text parameter at send time; currency and date-time parameters carry their fallback text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextParam {
    pub name: Option<String>,
    pub text: String,
}

impl TextParam {
    pub fn positional(text: &str) -> Self {
        TextParam {
            name: None,
            text: text.to_string(),
        }
    }

    pub fn named(name: &str, text: &str) -> Self {
        TextParam {
            name: Some(name.to_string()),
            text: text.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderParam {
    Text(TextParam),
    /// An uploaded media id (kind known only to Meta) or a link whose file ending is checked.
    Media {
        kind: MediaKind,
        link: Option<String>,
    },
    Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ButtonParamValue {
    Payload(String),
    UrlSuffix(String),
    CouponCode(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonParam {
    pub index: usize,
    pub value: ButtonParamValue,
}

/// The template part of a send request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSend {
    pub name: String,
    pub language: String,
    pub header: Option<HeaderParam>,
    pub body: Vec<TextParam>,
    pub buttons: Vec<ButtonParam>,
}

impl TemplateSend {
    pub fn new(name: &str, language: &str, body: Vec<TextParam>) -> Self {
        TemplateSend {
            name: name.to_string(),
            language: language.to_string(),
            header: None,
            body,
            buttons: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders_in_order() {
        let text = "Hi {{1}}, order {{ 2 }} ships {{1}}";
        let found = placeholders(text);
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].name, "2");
        assert_eq!(&text[found[0].start..found[0].end], "{{1}}");
        assert_eq!(parameter_names(text), vec!["1", "2"]);
        assert!(placeholders("no {{ close").is_empty());
    }
}
