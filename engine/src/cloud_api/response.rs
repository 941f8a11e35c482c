//! Meta's success shape for an accepted send.

use serde_json::{json, Value};

use crate::durable::message::message_id_text;

/// `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],"messages":[{"id",
/// "message_status"}]}`; `message_status` only for templates, as Meta does.
pub fn accepted(input: &str, wa_id: u64, message_id: u64, template: bool) -> Value {
    let mut message = json!({ "id": message_id_text(message_id) });
    if template {
        message["message_status"] = json!("accepted");
    }
    json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": input, "wa_id": wa_id.to_string() }],
        "messages": [message],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn success_has_metas_shape() {
        let body = super::accepted("+16505551234", 16_505_551_234, 7, true);
        assert_eq!(body["contacts"][0]["wa_id"], "16505551234");
        assert_eq!(body["messages"][0]["id"], "wagate.0000000000000007");
        assert_eq!(body["messages"][0]["message_status"], "accepted");
        assert!(super::accepted("x", 1, 1, false)["messages"][0]
            .get("message_status")
            .is_none());
    }
}
