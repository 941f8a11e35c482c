//! Meta's success shape for an accepted send, kept as its fields and written as JSON text only
//! where an answer is written (a bulk request answers thousands at once).

use std::fmt::Write;

use serde_json::Value;

use wagate_rules::ids::{message_id_text, Msisdn};

/// `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],"messages":[{"id",
/// "message_status"}]}`; `message_status` only for templates (as Meta does) or when wagate
/// says more (a queued send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// The recipient as the sender wrote it.
    pub input: String,
    pub wa_id: u64,
    pub message_id: u64,
    pub message_status: Option<&'static str>,
}

impl Success {
    /// `input` taken as it comes (a send's own, moved: no copy per answer).
    pub fn accepted(
        input: impl Into<String>,
        wa_id: u64,
        message_id: u64,
        template: bool,
    ) -> Success {
        Success {
            input: input.into(),
            wa_id,
            message_id,
            message_status: template.then_some("accepted"),
        }
    }

    /// Appends the answer's JSON text to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str(r#"{"messaging_product":"whatsapp","contacts":[{"input":"#);
        push_json_string(out, &self.input);
        if Msisdn::from_digits(self.wa_id).is_ok_and(Msisdn::is_group) {
            // A group: no person's WhatsApp id; the message names the group, as Meta's does.
            let _ = write!(
                out,
                r#"}}],"messages":[{{"id":"{}","group_id":"#,
                message_id_text(self.message_id)
            );
            push_json_string(out, &self.input);
        } else {
            let _ = write!(
                out,
                r#","wa_id":"{}"}}],"messages":[{{"id":"{}""#,
                self.wa_id,
                message_id_text(self.message_id)
            );
        }
        if let Some(status) = self.message_status {
            let _ = write!(out, r#","message_status":"{status}""#);
        }
        out.push_str("}]}");
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        self.write_json(&mut out);
        out
    }
}

/// Appends `text` as a JSON string; as is when nothing in it needs escaping (a recipient
/// almost never does), else through serde_json.
fn push_json_string(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        let _ = write!(out, "{}", Value::from(text));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::Success;

    #[test]
    fn success_has_metas_shape() {
        let body: Value = serde_json::from_str(
            &Success::accepted("+16505551234", 16_505_551_234, 7, true).to_json(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "contacts": [{ "input": "+16505551234", "wa_id": "16505551234" }],
                "messages": [{ "id": "wagate.0000000000000007", "message_status": "accepted" }],
            })
        );
        let free_form: Value =
            serde_json::from_str(&Success::accepted("x", 1, 1, false).to_json()).unwrap();
        assert!(free_form["messages"][0].get("message_status").is_none());
    }

    #[test]
    fn the_recipient_as_written_is_escaped() {
        let odd = "+1 \"650\" \\ 555\u{1}";
        let body: Value =
            serde_json::from_str(&Success::accepted(odd, 1_650_555, 1, false).to_json()).unwrap();
        assert_eq!(body["contacts"][0]["input"], odd);
    }
}
