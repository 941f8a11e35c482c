//! The Cloud API body of a template send wagate makes on a business's behalf (a campaign's
//! person, an automation's answer): the template, its language and its body's text parameters.

use serde_json::{json, Value};

/// The Cloud API body of one person's send: the template with its body's parameters.
pub(crate) fn template_body(
    to: &str,
    template: &str,
    language: &str,
    parameters: &[String],
) -> Vec<u8> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": { "name": template, "language": { "code": language } },
    });
    if !parameters.is_empty() {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|text| json!({ "type": "text", "text": text }))
            .collect();
        body["template"]["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    body.to_string().into_bytes()
}
