//! The submission lint: predicts the rejections Meta would give a template.

use super::model::{placeholders, ButtonSpec, HeaderSpec, ParameterFormat, TemplateDefinition};

pub const HEADER_MAX_CHARS: usize = 60;
pub const FOOTER_MAX_CHARS: usize = 60;
pub const BODY_MAX_CHARS: usize = 1_024;
pub const BUTTON_LABEL_MAX_CHARS: usize = 25;
pub const MAX_BUTTONS: usize = 10;
pub const MAX_URL_BUTTONS: usize = 2;
pub const MAX_PHONE_BUTTONS: usize = 1;

/// Link shorteners Meta refuses in templates.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "cutt.ly",
    "rb.gy",
    "shorturl.at",
    "tiny.cc",
    "rebrand.ly",
    "t.ly",
    "s.id",
    "v.gd",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintRule {
    BadName,
    HeaderTooLong,
    BodyTooLong,
    FooterTooLong,
    ButtonLabelTooLong,
    TooManyButtons,
    QuickRepliesNotContiguous,
    TooManyUrlButtons,
    TooManyPhoneButtons,
    VariablesNotSequential,
    VariableAtEdge,
    AdjacentVariables,
    TooManyHeaderVariables,
    InsecureLink,
    LinkShortener,
    MoreThanOneHeader,
}

impl LintRule {
    /// The rule's name on the wire (`bad_name`, `variable_at_edge`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LintRule::BadName => "bad_name",
            LintRule::HeaderTooLong => "header_too_long",
            LintRule::BodyTooLong => "body_too_long",
            LintRule::FooterTooLong => "footer_too_long",
            LintRule::ButtonLabelTooLong => "button_label_too_long",
            LintRule::TooManyButtons => "too_many_buttons",
            LintRule::QuickRepliesNotContiguous => "quick_replies_not_contiguous",
            LintRule::TooManyUrlButtons => "too_many_url_buttons",
            LintRule::TooManyPhoneButtons => "too_many_phone_buttons",
            LintRule::VariablesNotSequential => "variables_not_sequential",
            LintRule::VariableAtEdge => "variable_at_edge",
            LintRule::AdjacentVariables => "adjacent_variables",
            LintRule::TooManyHeaderVariables => "too_many_header_variables",
            LintRule::InsecureLink => "insecure_link",
            LintRule::LinkShortener => "link_shortener",
            LintRule::MoreThanOneHeader => "more_than_one_header",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    pub rule: LintRule,
    /// The Meta error code the rejection would carry.
    pub code: u32,
    pub message: String,
}

/// Everything that would get `definition` rejected; empty when it looks approvable.
pub fn lint(definition: &TemplateDefinition) -> Vec<LintFinding> {
    let mut findings = Vec::new();
    let mut add = |rule, code, message: String| {
        findings.push(LintFinding {
            rule,
            code,
            message,
        })
    };

    let name_ok = !definition.name.is_empty()
        && definition.name.len() <= 512
        && definition
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        add(
            LintRule::BadName,
            100,
            "name must be 1-512 lowercase letters, digits or underscores".into(),
        );
    }

    if definition.headers.len() > 1 {
        add(
            LintRule::MoreThanOneHeader,
            2_388_047,
            format!(
                "{} headers; a template has one header of one kind",
                definition.headers.len()
            ),
        );
    }
    for header in &definition.headers {
        if let HeaderSpec::Text(text) = header {
            let chars = text.chars().count();
            if chars > HEADER_MAX_CHARS {
                add(
                    LintRule::HeaderTooLong,
                    2_388_040,
                    format!("header has {chars} characters; at most {HEADER_MAX_CHARS}"),
                );
            }
            let variables = placeholders(text).len();
            if variables > 1 {
                add(
                    LintRule::TooManyHeaderVariables,
                    2_388_047,
                    format!("header has {variables} variables; at most 1"),
                );
            }
            check_text_variables("header", text, definition.parameter_format, &mut add);
        }
    }

    let body_chars = definition.body.chars().count();
    if body_chars > BODY_MAX_CHARS {
        add(
            LintRule::BodyTooLong,
            2_388_040,
            format!("body has {body_chars} characters; at most {BODY_MAX_CHARS}"),
        );
    }
    check_text_variables(
        "body",
        &definition.body,
        definition.parameter_format,
        &mut add,
    );

    if let Some(footer) = &definition.footer {
        let chars = footer.chars().count();
        if chars > FOOTER_MAX_CHARS {
            add(
                LintRule::FooterTooLong,
                2_388_040,
                format!("footer has {chars} characters; at most {FOOTER_MAX_CHARS}"),
            );
        }
    }

    check_buttons(&definition.buttons, &mut add);

    let mut texts: Vec<&str> = vec![definition.body.as_str()];
    texts.extend(definition.footer.as_deref());
    for header in &definition.headers {
        if let HeaderSpec::Text(text) = header {
            texts.push(text);
        }
    }
    for button in &definition.buttons {
        if let ButtonSpec::Url { url, .. } = button {
            texts.push(url);
        }
    }
    for text in texts {
        check_links(text, &mut add);
    }
    findings
}

fn check_text_variables(
    part: &str,
    text: &str,
    format: ParameterFormat,
    add: &mut impl FnMut(LintRule, u32, String),
) {
    let found = placeholders(text);
    if found.is_empty() {
        return;
    }
    match format {
        ParameterFormat::Positional => {
            let mut numbers: Vec<u32> = Vec::new();
            for placeholder in &found {
                match placeholder.name.parse::<u32>() {
                    Ok(n) if !numbers.contains(&n) => numbers.push(n),
                    Ok(_) => {}
                    Err(_) => add(
                        LintRule::VariablesNotSequential,
                        2_388_072,
                        format!(
                            "{part} variable '{{{{{}}}}}' is not a number",
                            placeholder.name
                        ),
                    ),
                }
            }
            let mut sorted = numbers.clone();
            sorted.sort_unstable();
            if sorted.iter().enumerate().any(|(i, n)| *n != i as u32 + 1) {
                add(
                    LintRule::VariablesNotSequential,
                    2_388_072,
                    format!("{part} variables must be {{{{1}}}}, {{{{2}}}}, ... without gaps"),
                );
            }
        }
        ParameterFormat::Named => {
            for placeholder in &found {
                let ok = !placeholder.name.is_empty()
                    && placeholder
                        .name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit());
                if !ok {
                    add(
                        LintRule::VariablesNotSequential,
                        2_388_072,
                        format!(
                            "{part} variable '{}' must be lowercase letters and underscores",
                            placeholder.name
                        ),
                    );
                }
            }
        }
    }
    let trimmed_start = text.len() - text.trim_start().len();
    let trimmed_end = text.trim_end().len();
    if found[0].start == trimmed_start || found[found.len() - 1].end == trimmed_end {
        add(
            LintRule::VariableAtEdge,
            2_388_299,
            format!("{part} starts or ends with a variable"),
        );
    }
    for pair in found.windows(2) {
        if text[pair[0].end..pair[1].start].trim().is_empty() {
            add(
                LintRule::AdjacentVariables,
                2_388_072,
                format!("{part} has two variables with no text between them"),
            );
            break;
        }
    }
}

fn check_buttons(buttons: &[ButtonSpec], add: &mut impl FnMut(LintRule, u32, String)) {
    if buttons.len() > MAX_BUTTONS {
        add(
            LintRule::TooManyButtons,
            100,
            format!("{} buttons; at most {MAX_BUTTONS}", buttons.len()),
        );
    }
    let quick_replies: Vec<usize> = buttons
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, ButtonSpec::QuickReply { .. }))
        .map(|(i, _)| i)
        .collect();
    if let (Some(first), Some(last)) = (quick_replies.first(), quick_replies.last()) {
        if last - first + 1 != quick_replies.len() {
            add(
                LintRule::QuickRepliesNotContiguous,
                100,
                "quick-reply buttons must be grouped together".into(),
            );
        }
    }
    let urls = buttons
        .iter()
        .filter(|b| matches!(b, ButtonSpec::Url { .. }))
        .count();
    if urls > MAX_URL_BUTTONS {
        add(
            LintRule::TooManyUrlButtons,
            100,
            format!("{urls} URL buttons; at most {MAX_URL_BUTTONS}"),
        );
    }
    let phones = buttons
        .iter()
        .filter(|b| matches!(b, ButtonSpec::PhoneNumber { .. }))
        .count();
    if phones > MAX_PHONE_BUTTONS {
        add(
            LintRule::TooManyPhoneButtons,
            100,
            format!("{phones} phone buttons; at most {MAX_PHONE_BUTTONS}"),
        );
    }
    for button in buttons {
        let label = match button {
            ButtonSpec::QuickReply { text }
            | ButtonSpec::Url { text, .. }
            | ButtonSpec::PhoneNumber { text, .. } => text,
            ButtonSpec::CopyCode { .. } => continue,
        };
        let chars = label.chars().count();
        if chars > BUTTON_LABEL_MAX_CHARS {
            add(LintRule::ButtonLabelTooLong, 2_388_040, format!("button label '{label}' has {chars} characters; at most {BUTTON_LABEL_MAX_CHARS}"));
        }
    }
}

fn check_links(text: &str, add: &mut impl FnMut(LintRule, u32, String)) {
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>') {
        let lower = word.to_ascii_lowercase();
        let rest = if let Some(rest) = lower.strip_prefix("https://") {
            rest
        } else if let Some(rest) = lower.strip_prefix("http://") {
            add(
                LintRule::InsecureLink,
                2_388_072,
                format!("link '{word}' is not https"),
            );
            rest
        } else if lower.starts_with("www.") {
            lower.as_str()
        } else {
            continue;
        };
        let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
        let host = host.strip_prefix("www.").unwrap_or(host);
        if SHORTENERS.contains(&host) {
            add(
                LintRule::LinkShortener,
                2_388_072,
                format!("link '{word}' uses the shortener {host}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;
    use crate::template::model::{Category, MediaKind};

    fn rules_of(definition: &TemplateDefinition) -> Vec<LintRule> {
        lint(definition).into_iter().map(|f| f.rule).collect()
    }

    fn body(text: &str) -> TemplateDefinition {
        TemplateDefinition::new(
            AccountId(1),
            "order_update",
            "en_US",
            Category::Utility,
            text,
        )
    }

    #[test]
    fn a_good_template_has_no_findings() {
        let mut good = body(
            "Hello {{1}}, your order {{2}} has shipped. Track it at https://shop.example.com/t",
        );
        good.headers.push(HeaderSpec::Media(MediaKind::Image));
        good.footer = Some("Acme".into());
        good.buttons = vec![
            ButtonSpec::QuickReply { text: "Yes".into() },
            ButtonSpec::QuickReply { text: "No".into() },
            ButtonSpec::Url {
                text: "Track".into(),
                url: "https://shop.example.com/t/{{1}}".into(),
            },
            ButtonSpec::PhoneNumber {
                text: "Call".into(),
                phone_number: "+16505551234".into(),
            },
        ];
        assert_eq!(lint(&good), vec![]);
    }

    #[test]
    fn length_limits() {
        let mut long = body(&"x".repeat(1_025));
        long.headers.push(HeaderSpec::Text("h".repeat(61)));
        long.footer = Some("f".repeat(61));
        let rules = rules_of(&long);
        for rule in [
            LintRule::BodyTooLong,
            LintRule::HeaderTooLong,
            LintRule::FooterTooLong,
        ] {
            assert!(rules.contains(&rule), "{rule:?} in {rules:?}");
        }
        assert!(rules_of(&body(&"x".repeat(1_024))).is_empty());
    }

    #[test]
    fn variable_placement() {
        assert_eq!(
            rules_of(&body("{{1}} is your code")),
            vec![LintRule::VariableAtEdge]
        );
        assert_eq!(
            rules_of(&body("Your code is {{1}}")),
            vec![LintRule::VariableAtEdge]
        );
        assert_eq!(
            rules_of(&body("Hi {{1}} {{2}} there")),
            vec![LintRule::AdjacentVariables]
        );
        assert_eq!(
            rules_of(&body("Hi {{1}} and {{3}} there")),
            vec![LintRule::VariablesNotSequential]
        );
        assert!(rules_of(&body("Hi {{1}}, meet {{2}} today")).is_empty());
        let mut named = body("Hi {{first_name}}, meet {{Agent}} today");
        named.parameter_format = ParameterFormat::Named;
        assert_eq!(rules_of(&named), vec![LintRule::VariablesNotSequential]);
    }

    #[test]
    fn buttons() {
        let qr = || ButtonSpec::QuickReply { text: "Ok".into() };
        let url = || ButtonSpec::Url {
            text: "Go".into(),
            url: "https://example.com".into(),
        };
        let phone = || ButtonSpec::PhoneNumber {
            text: "Call".into(),
            phone_number: "+1650".into(),
        };
        let mut split = body("Pick one please");
        split.buttons = vec![qr(), url(), qr()];
        assert_eq!(rules_of(&split), vec![LintRule::QuickRepliesNotContiguous]);
        let mut many = body("Pick one please");
        many.buttons = vec![url(), url(), url(), phone(), phone()];
        assert_eq!(
            rules_of(&many),
            vec![LintRule::TooManyUrlButtons, LintRule::TooManyPhoneButtons]
        );
        let mut eleven = body("Pick one please");
        eleven.buttons = (0..11).map(|_| qr()).collect();
        assert_eq!(rules_of(&eleven), vec![LintRule::TooManyButtons]);
    }

    #[test]
    fn links_and_media() {
        assert_eq!(
            rules_of(&body("See http://example.com now")),
            vec![LintRule::InsecureLink]
        );
        assert_eq!(
            rules_of(&body("See https://bit.ly/abc now")),
            vec![LintRule::LinkShortener]
        );
        let mut mixed = body("See the attachment please");
        mixed.headers = vec![
            HeaderSpec::Media(MediaKind::Image),
            HeaderSpec::Media(MediaKind::Document),
        ];
        assert_eq!(rules_of(&mixed), vec![LintRule::MoreThanOneHeader]);
        let mut shortened_button = body("Tap below please");
        shortened_button.buttons = vec![ButtonSpec::Url {
            text: "Go".into(),
            url: "https://tinyurl.com/x".into(),
        }];
        assert_eq!(rules_of(&shortened_button), vec![LintRule::LinkShortener]);
    }
}
