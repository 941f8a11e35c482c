//! Errors in Meta's shape: what a caller of the Cloud API already knows how to read.
//!
//! `{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,
//! "error_data":{"messaging_product":"whatsapp","details":"..."},"fbtrace_id":"..."}}`, plus
//! `wagate_reason`, wagate's own stable name for the reason.

use serde_json::{json, Value};

use wagate_rules::decision::{DeferReason, Refusal};

/// An error answer: HTTP status, Meta's code and title, the details, and wagate's reason.
/// Shown as Meta writes its message: `(#code) title: details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("(#{code}) {title}: {details}")]
pub struct ApiError {
    pub http_status: u16,
    pub code: u32,
    pub title: String,
    pub details: String,
    pub reason: String,
}

impl ApiError {
    pub fn new(
        http_status: u16,
        code: u32,
        title: &str,
        details: impl Into<String>,
        reason: &str,
    ) -> ApiError {
        ApiError {
            http_status,
            code,
            title: title.to_string(),
            details: details.into(),
            reason: reason.to_string(),
        }
    }

    /// Code 100: a parameter is invalid (Meta's answer to most malformed requests).
    pub fn invalid_parameter(details: impl Into<String>) -> ApiError {
        Self::new(400, 100, "Invalid parameter", details, "invalid_parameter")
    }

    /// Code 131008: a required parameter is missing.
    pub fn missing_parameter(details: impl Into<String>) -> ApiError {
        Self::new(
            400,
            131_008,
            "Required parameter is missing",
            details,
            "missing_parameter",
        )
    }

    pub fn to_json(&self, trace_id: &str) -> Value {
        json!({
            "error": {
                "message": format!("(#{}) {}", self.code, self.title),
                "type": "OAuthException",
                "code": self.code,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": self.details,
                },
                "fbtrace_id": trace_id,
                "wagate_reason": self.reason,
            }
        })
    }
}

/// Meta's title for a refusal, by wagate's stable name for it (replayed answers keep only
/// the name).
fn title_of(name: &str) -> &'static str {
    match name {
        "outside_service_window" => "Re-engagement message",
        "no_opt_in" | "opted_out" | "topic_opted_out" => "Recipient has not opted in",
        "marketing_opted_out" => "Recipient stopped marketing messages",
        "unreachable" => "Message undeliverable",
        "template_not_found" | "template_not_approved" => {
            "Template name does not exist in the translation"
        }
        "template_paused" => "Template is paused",
        "template_disabled" => "Template is disabled",
        "parameter_count" => "Number of parameters does not match the expected number of params",
        "parameter_format" => "Parameter format does not match format in the created template",
        "media_type" => "Media upload error",
        "button_parameter" => "Parameter value is not valid",
        "expired" => "Message expired",
        _ => "Invalid parameter",
    }
}

impl ApiError {
    /// A refusal as decided or replayed: Meta's code when it has one, else wagate's own (470001 for
    /// consent, 470004 for an expired send).
    pub fn refused(code: Option<u32>, name: &str, reason: &str) -> ApiError {
        let own = match name {
            "expired" => WAGATE_EXPIRED_CODE,
            _ => WAGATE_CONSENT_CODE,
        };
        ApiError::new(400, code.unwrap_or(own), title_of(name), reason, name)
    }
}

impl From<&Refusal> for ApiError {
    /// Rules without a Meta code (consent) answer 400 with wagate's code 470001.
    fn from(refusal: &Refusal) -> ApiError {
        ApiError::refused(refusal.meta_code(), refusal.name(), &refusal.to_string())
    }
}

/// wagate's code for refusals Meta has none for (no opt-in, opted out).
pub const WAGATE_CONSENT_CODE: u32 = 470_001;
/// wagate's code for the unique-recipient limit, when the caller asked not to queue.
pub const WAGATE_TIER_LIMIT_CODE: u32 = 470_002;
/// wagate's code for the per-person marketing cap, when the caller asked not to queue.
pub const WAGATE_MARKETING_CAP_CODE: u32 = 470_003;
/// wagate's code for a send whose validity (`expire_at`) ended before it could go.
pub const WAGATE_EXPIRED_CODE: u32 = 470_004;
/// wagate's code for a scheduled send asked not to be queued (it always is).
pub const WAGATE_SCHEDULED_CODE: u32 = 470_005;
/// wagate's code for a send held by quiet hours, when the caller asked not to queue.
pub const WAGATE_QUIET_HOURS_CODE: u32 = 470_006;

/// A deferral answered as an immediate refusal (the caller chose not to queue).
pub fn deferral_error(reason: DeferReason, retry_after_secs: u64) -> ApiError {
    let (code, title) = match reason {
        DeferReason::PairRate => (131_056, "Pair rate limit hit"),
        DeferReason::Throughput => (130_429, "Rate limit hit"),
        DeferReason::MarketingCooldown => (
            131_049,
            "This message was not delivered to maintain healthy ecosystem engagement",
        ),
        DeferReason::Restricted => (368, "Temporarily blocked for policies violations"),
        DeferReason::TemplatePaused => (132_015, "Template is paused"),
        DeferReason::Scheduled => (WAGATE_SCHEDULED_CODE, "Scheduled for later"),
        DeferReason::QuietHours => (
            WAGATE_QUIET_HOURS_CODE,
            "Outside the person's allowed hours",
        ),
        DeferReason::TierLimit => (WAGATE_TIER_LIMIT_CODE, "Messaging limit reached"),
        DeferReason::MarketingCap => (
            WAGATE_MARKETING_CAP_CODE,
            "Marketing cap for this person reached",
        ),
    };
    ApiError::new(
        429,
        code,
        title,
        format!(
            "deferred: {}; retry after {retry_after_secs} s",
            reason.name()
        ),
        reason.name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_meta_shape_and_wagate_reason() {
        let error = ApiError::from(&Refusal::OutsideServiceWindow);
        let body = error.to_json("Az8or2yhqkZfEZ");
        assert_eq!(body["error"]["code"], 131_047);
        assert_eq!(body["error"]["message"], "(#131047) Re-engagement message");
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");
        assert_eq!(body["error"]["wagate_reason"], "outside_service_window");
        assert_eq!(ApiError::from(&Refusal::NoOptIn).code, WAGATE_CONSENT_CODE);
        let pair = deferral_error(DeferReason::PairRate, 6);
        assert_eq!((pair.http_status, pair.code), (429, 131_056));
    }
}
