//! Meta's webhook payloads, parsed into typed events wagate acts on.
//!
//! One POST carries `{"object":"whatsapp_business_account","entry":[{"changes":[{"field",
//! "value"}]}]}` with up to a thousand changes. Fields wagate has no use for become
//! `Ignored` rather than errors: Meta adds fields, and a refused webhook is retried for days.
//!
//! The envelope is read into typed parts with each change kept as written; a `messages`
//! change's statuses (most of Meta's webhooks, three or more per message sent) are read
//! straight into typed fields borrowed from the body; the rarer fields through a JSON tree.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::ApiError;
use crate::json_text::{read_body, read_part, text as text_of, Text};
use wagate_rules::contact_events::{ConsentChange, InboundContent, InboundMessage};
use wagate_rules::ids::{AccountId, Msisdn, PhoneNumberId};
use wagate_rules::quality::Quality;
use wagate_rules::template::model::Category;
use wagate_rules::template::status::TemplateStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl DeliveryStatus {
    /// Meta's word for it.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Whom a status of a group message concerns: the group, and the participant when the status
/// is one participant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecipient {
    pub group: String,
    pub participant: Option<String>,
}

/// Meta's pricing of a message, from a status (`pricing`): whether it is charged, the
/// pricing type (`regular`, `free_customer_service`, `free_entry_point`, ...) and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPricing {
    pub billable: bool,
    pub kind: String,
    pub category: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A person wrote (or tapped a button): opens the window, may change consent.
    Inbound {
        wamid: String,
        message: InboundMessage,
    },
    /// What became of a message sent: `errors` carries Meta's failure codes.
    Status {
        number: PhoneNumberId,
        wamid: String,
        status: DeliveryStatus,
        recipient: Option<Msisdn>,
        errors: Vec<u32>,
        biz_opaque_callback_data: Option<String>,
        /// What Meta charges for the message (only once, on one of its statuses).
        pricing: Option<StatusPricing>,
        /// Inside a free entry point window: when Meta says it ends (Unix seconds).
        free_entry_until: Option<u64>,
        /// A message sent to a group: the group (`recipient_id` with `recipient_type:
        /// "group"`) and, for one participant's status, who (`recipient_participant_id`).
        group: Option<GroupRecipient>,
    },
    /// A participant wrote in a group (a message with `group_id`): the group's own service
    /// window opens; the person's own window does not.
    GroupInbound {
        number: PhoneNumberId,
        group: String,
        /// Meta's id of the message (read marks are not taken for it).
        wamid: String,
        /// When they wrote (Unix seconds, Meta's `timestamp`).
        at: u64,
    },
    /// One item of a Groups API webhook (`group_lifecycle_update`,
    /// `group_participants_update`, `group_settings_update`, `group_status_update`) about a
    /// group of `number`, as Meta wrote it.
    GroupChange {
        number: PhoneNumberId,
        field: String,
        item: Value,
    },
    /// The person stopped or resumed marketing messages in WhatsApp itself.
    UserPreference {
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
    },
    TemplateStatus {
        account: AccountId,
        name: String,
        language: String,
        status: TemplateStatus,
        reason: Option<String>,
        /// Meta's id for the template (`message_template_id`).
        meta_id: Option<u64>,
    },
    TemplateQuality {
        account: AccountId,
        name: String,
        language: String,
        quality: Quality,
    },
    /// `template_category_update`: Meta recategorised the template (its price and the rules
    /// for it follow the new category from now on).
    TemplateCategory {
        account: AccountId,
        name: String,
        language: String,
        category: Category,
    },
    /// Tier and flag news for a number (`FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`, ...).
    NumberQuality {
        display_phone_number: String,
        event: String,
        current_limit: Option<String>,
    },
    /// Account-level news. `detail`: the ban state of `DISABLED_UPDATE` (`DISABLE`,
    /// `REINSTATE`, ...) or the restriction types of `ACCOUNT_RESTRICTION`, comma-separated.
    AccountUpdate {
        account: AccountId,
        event: String,
        detail: String,
    },
    /// `account_update` `VOLUME_BASED_PRICING_TIER_UPDATE`: the portfolio's monthly volume
    /// tier for a pricing category in a region (`tier` as Meta writes it, `"25000001:50000000"`;
    /// `effective_month` `YYYY-MM`).
    VolumeTier {
        account: AccountId,
        category: String,
        region: String,
        tier: String,
        effective_month: String,
    },
    /// `business_capability_update`: the messaging limit Meta set for the account's business,
    /// as a tier name (`max_daily_conversations_per_business`, or the legacy integer
    /// `max_daily_conversation_per_phone` named as its tier).
    CapabilityUpdate { account: AccountId, limit: String },
    /// `message_template_components_update`: the template's text changed at Meta (its body,
    /// `message_template_element`, and footer): its parameters are counted anew.
    TemplateComponents {
        account: AccountId,
        name: String,
        language: String,
        body: String,
        footer: Option<String>,
    },
    /// `phone_number_name_update`: Meta's decision on the number's display name.
    NameDecision {
        display_phone_number: String,
        decision: String,
    },
    /// A field or a value wagate does not act on.
    Ignored { field: String },
}

impl WebhookEvent {
    /// What the event is about, for an operator's log line.
    pub fn kind(&self) -> String {
        match self {
            WebhookEvent::Inbound { .. } => "messages (inbound)".into(),
            WebhookEvent::Status { .. } => "messages (status)".into(),
            WebhookEvent::GroupInbound { group, .. } => format!("messages (group {group})"),
            WebhookEvent::GroupChange { field, item, .. } => {
                format!("{field} {}", item["type"].as_str().unwrap_or(""))
            }
            WebhookEvent::UserPreference { .. } => "user_preferences".into(),
            WebhookEvent::TemplateStatus {
                name,
                language,
                status,
                ..
            } => format!(
                "message_template_status_update {name}/{language} {}",
                status.name()
            ),
            WebhookEvent::TemplateQuality { name, language, .. } => {
                format!("message_template_quality_update {name}/{language}")
            }
            WebhookEvent::TemplateCategory {
                name,
                language,
                category,
                ..
            } => format!(
                "template_category_update {name}/{language} {}",
                category.name()
            ),
            WebhookEvent::NameDecision {
                display_phone_number,
                decision,
            } => format!("phone_number_name_update {display_phone_number} {decision}"),
            WebhookEvent::TemplateComponents { name, language, .. } => {
                format!("message_template_components_update {name}/{language}")
            }
            WebhookEvent::NumberQuality {
                display_phone_number,
                event,
                ..
            } => format!("phone_number_quality_update {display_phone_number} {event}"),
            WebhookEvent::AccountUpdate { event, .. } => format!("account_update {event}"),
            WebhookEvent::VolumeTier {
                category, region, ..
            } => format!("account_update VOLUME_BASED_PRICING_TIER_UPDATE {category} {region}"),
            WebhookEvent::CapabilityUpdate { limit, .. } => {
                format!("business_capability_update {limit}")
            }
            WebhookEvent::Ignored { field } => format!("{field} (not understood)"),
        }
    }
}

/// The tier name of the legacy integer limit (`-1`: unlimited).
fn tier_of_integer(limit: i64) -> Option<&'static str> {
    Some(match limit {
        -1 => "TIER_UNLIMITED",
        50 => "TIER_50",
        250 => "TIER_250",
        1_000 => "TIER_1K",
        2_000 => "TIER_2K",
        10_000 => "TIER_10K",
        100_000 => "TIER_100K",
        _ => return None,
    })
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn number_of(value: &Value) -> Result<PhoneNumberId, ApiError> {
    value
        .get("metadata")
        .and_then(|m| text(m, "phone_number_id"))
        .and_then(|id| id.parse().ok())
        .map(PhoneNumberId)
        .ok_or_else(|| {
            ApiError::missing_parameter("value.metadata.phone_number_id is missing or not a number")
        })
}

fn person_of(text: &str) -> Result<Msisdn, ApiError> {
    Msisdn::parse(text).map_err(|e| ApiError::invalid_parameter(format!("wa_id {text}: {e}")))
}

/// The template a management event names (`message_template_name`, `..._language`).
fn template_named(value: &Value) -> Option<(String, String)> {
    Some((
        text(value, "message_template_name")?.to_string(),
        text(value, "message_template_language")?.to_string(),
    ))
}

/// A template status as Meta words it (webhook events and the template list alike).
pub fn template_status(event: &str) -> Option<TemplateStatus> {
    Some(match event.to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" | "UNPAUSED" => TemplateStatus::Approved,
        "PENDING" | "IN_APPEAL" => TemplateStatus::InReview,
        "REJECTED" => TemplateStatus::Rejected,
        "PAUSED" => TemplateStatus::Paused,
        "DISABLED" => TemplateStatus::Disabled,
        "FLAGGED" => TemplateStatus::Flagged,
        "DELETED" | "PENDING_DELETION" | "ARCHIVED" => TemplateStatus::Deleted,
        "LOCKED" | "LIMIT_EXCEEDED" => TemplateStatus::Locked,
        _ => return None,
    })
}

fn inbound_content(message: &Value) -> InboundContent {
    match text(message, "type") {
        Some("text") => InboundContent::Text(
            message
                .get("text")
                .and_then(|t| text(t, "body"))
                .unwrap_or_default()
                .to_string(),
        ),
        Some("button") => InboundContent::Button {
            payload: message
                .get("button")
                .and_then(|b| text(b, "payload"))
                .unwrap_or_default()
                .to_string(),
        },
        Some("interactive") => {
            let interactive = message.get("interactive");
            let reply = interactive
                .and_then(|i| i.get("button_reply").or_else(|| i.get("list_reply")))
                .and_then(|r| text(r, "id"));
            match reply {
                Some(id) => InboundContent::InteractiveReply { id: id.to_string() },
                None => InboundContent::Other,
            }
        }
        _ => InboundContent::Other,
    }
}

/// A webhook POST read once: its entries, each change kept as written until it is read.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow)]
    object: Option<Text<'a>>,
    #[serde(borrow)]
    entry: Option<Vec<Entry<'a>>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    /// The WhatsApp Business Account the changes belong to, as Meta wrote it.
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    changes: Option<Vec<&'a RawValue>>,
}

impl<'a> Envelope<'a> {
    fn entries(&self) -> &[Entry<'a>] {
        self.entry.as_deref().unwrap_or(&[])
    }
}

impl<'a> Entry<'a> {
    /// Each change as written.
    fn changes(&self) -> &[&'a RawValue] {
        self.changes.as_deref().unwrap_or(&[])
    }
}

/// One change: which field it is about, and its value as written.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    field: Option<Text<'a>>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

impl Change<'_> {
    /// Reads a change as written.
    fn read(raw: &RawValue) -> Result<Change<'_>, ApiError> {
        read_part(raw, "changes[]")
    }

    fn field(&self) -> Option<&str> {
        text_of(&self.field)
    }
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    phone_number_id: Option<Text<'a>>,
}

/// A `messages` change's value: inbound messages (read through a JSON tree, they are few)
/// and statuses (typed).
#[derive(Deserialize)]
struct MessagesValue<'a> {
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    statuses: Option<Vec<StatusItem<'a>>>,
}

/// A Groups API change's value: its number and its `groups` items (few, read as trees).
#[derive(Deserialize)]
struct GroupsValue<'a> {
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    groups: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct StatusItem<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    status: Option<Text<'a>>,
    #[serde(borrow)]
    recipient_id: Option<Text<'a>>,
    #[serde(borrow)]
    recipient_type: Option<Text<'a>>,
    #[serde(borrow)]
    recipient_participant_id: Option<Text<'a>>,
    #[serde(borrow)]
    biz_opaque_callback_data: Option<Text<'a>>,
    errors: Option<Vec<StatusErrorItem>>,
    #[serde(borrow)]
    pricing: Option<PricingItem<'a>>,
    #[serde(borrow)]
    conversation: Option<ConversationItem<'a>>,
}

#[derive(Deserialize)]
struct ConversationItem<'a> {
    #[serde(borrow)]
    expiration_timestamp: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct PricingItem<'a> {
    billable: Option<bool>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    category: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct StatusErrorItem {
    code: Option<u64>,
}

fn number_in(metadata: Option<&Metadata>) -> Result<PhoneNumberId, ApiError> {
    metadata
        .and_then(|m| m.phone_number_id.as_ref())
        .and_then(|id| id.as_str().parse().ok())
        .map(PhoneNumberId)
        .ok_or_else(|| {
            ApiError::missing_parameter("value.metadata.phone_number_id is missing or not a number")
        })
}

/// Reads a `messages` change's events into `events`; returns the number it is for.
fn messages_field(
    value: &RawValue,
    events: &mut Vec<WebhookEvent>,
) -> Result<PhoneNumberId, ApiError> {
    let value: MessagesValue = read_part(value, "a messages change's value")?;
    let number = number_in(value.metadata.as_ref())?;
    let messages: Value = match value.messages {
        Some(raw) => read_part(raw, "messages")?,
        None => Value::Null,
    };
    for message in messages.as_array().map_or(&[][..], Vec::as_slice) {
        let from = text(message, "from")
            .ok_or_else(|| ApiError::missing_parameter("messages[].from is missing"))?;
        if let Some(group) = text(message, "group_id") {
            events.push(WebhookEvent::GroupInbound {
                number,
                group: group.to_string(),
                wamid: text(message, "id").unwrap_or_default().to_string(),
                at: text(message, "timestamp")
                    .and_then(|at| at.parse().ok())
                    .unwrap_or(0),
            });
            continue;
        }
        events.push(WebhookEvent::Inbound {
            wamid: text(message, "id").unwrap_or_default().to_string(),
            message: InboundMessage {
                number,
                from: person_of(from)?,
                content: inbound_content(message),
                referral: message.get("referral").is_some(),
            },
        });
    }
    for status in value.statuses.iter().flatten() {
        let state = match text_of(&status.status) {
            Some("sent") => DeliveryStatus::Sent,
            Some("delivered") => DeliveryStatus::Delivered,
            Some("read") => DeliveryStatus::Read,
            Some("played") => DeliveryStatus::Played,
            Some("failed") => DeliveryStatus::Failed,
            other => {
                events.push(WebhookEvent::Ignored {
                    field: format!("statuses[].status {other:?}"),
                });
                continue;
            }
        };
        let group = (text_of(&status.recipient_type) == Some("group")).then(|| GroupRecipient {
            group: text_of(&status.recipient_id)
                .unwrap_or_default()
                .to_string(),
            participant: text_of(&status.recipient_participant_id).map(str::to_string),
        });
        // A group's id is no person's number: a group's status names no person.
        let recipient = match group {
            Some(_) => None,
            None => text_of(&status.recipient_id).map(person_of).transpose()?,
        };
        events.push(WebhookEvent::Status {
            number,
            wamid: text_of(&status.id).unwrap_or_default().to_string(),
            status: state,
            recipient,
            group,
            errors: status
                .errors
                .iter()
                .flatten()
                .filter_map(|e| e.code)
                .map(|c| c as u32)
                .collect(),
            biz_opaque_callback_data: text_of(&status.biz_opaque_callback_data).map(str::to_string),
            free_entry_until: status
                .pricing
                .as_ref()
                .filter(|pricing| text_of(&pricing.kind) == Some("free_entry_point"))
                .and(status.conversation.as_ref())
                .and_then(|conversation| text_of(&conversation.expiration_timestamp))
                .and_then(|at| at.parse().ok()),
            pricing: status.pricing.as_ref().map(|pricing| {
                let kind = text_of(&pricing.kind);
                StatusPricing {
                    // `billable` is slated to go: Meta's `type` says it as well.
                    billable: pricing
                        .billable
                        .unwrap_or_else(|| kind.is_none_or(|kind| kind == "regular")),
                    kind: kind.unwrap_or("regular").to_string(),
                    category: text_of(&pricing.category).unwrap_or_default().to_string(),
                }
            }),
        });
    }
    Ok(number)
}

/// The events of a change other than `messages`, read through a JSON tree.
fn change_of(
    account: AccountId,
    field: &str,
    value: &Value,
    events: &mut Vec<WebhookEvent>,
) -> Result<(), ApiError> {
    match field {
        "user_preferences" => {
            let number = number_of(value)?;
            for preference in items(value, "user_preferences") {
                let change = match (text(preference, "category"), text(preference, "value")) {
                    (Some("marketing_messages"), Some("stop")) => ConsentChange::MarketingOptOut,
                    (Some("marketing_messages"), Some("resume")) => ConsentChange::MarketingOptIn,
                    _ => {
                        events.push(WebhookEvent::Ignored {
                            field: "user_preferences[]".into(),
                        });
                        continue;
                    }
                };
                let wa_id = text(preference, "wa_id").ok_or_else(|| {
                    ApiError::missing_parameter("user_preferences[].wa_id is missing")
                })?;
                events.push(WebhookEvent::UserPreference {
                    number,
                    person: person_of(wa_id)?,
                    change,
                });
            }
        }
        "message_template_status_update" => {
            let status = text(value, "event").and_then(template_status);
            match (status, template_named(value)) {
                (Some(status), Some((name, language))) => {
                    events.push(WebhookEvent::TemplateStatus {
                        account,
                        name,
                        language,
                        status,
                        reason: text(value, "reason").map(str::to_string),
                        meta_id: value["message_template_id"].as_u64(),
                    })
                }
                // Named in the log line: a status Meta added is what an operator must learn of.
                _ => events.push(WebhookEvent::Ignored {
                    field: format!("{field} event {}", text(value, "event").unwrap_or("(none)")),
                }),
            }
        }
        "template_category_update" => {
            let category = text(value, "new_category").and_then(Category::parse);
            match (category, template_named(value)) {
                (Some(category), Some((name, language))) => {
                    events.push(WebhookEvent::TemplateCategory {
                        account,
                        name,
                        language,
                        category,
                    })
                }
                _ => events.push(WebhookEvent::Ignored {
                    field: field.to_string(),
                }),
            }
        }
        "message_template_components_update" => {
            match (
                text(value, "message_template_element"),
                template_named(value),
            ) {
                (Some(body), Some((name, language))) => {
                    events.push(WebhookEvent::TemplateComponents {
                        account,
                        name,
                        language,
                        body: body.to_string(),
                        footer: text(value, "message_template_footer").map(str::to_string),
                    })
                }
                _ => events.push(WebhookEvent::Ignored {
                    field: field.to_string(),
                }),
            }
        }
        "message_template_quality_update" => {
            let quality = text(value, "new_quality_score").and_then(Quality::parse_meta);
            match (quality, template_named(value)) {
                (Some(quality), Some((name, language))) => {
                    events.push(WebhookEvent::TemplateQuality {
                        account,
                        name,
                        language,
                        quality,
                    })
                }
                _ => events.push(WebhookEvent::Ignored {
                    field: field.to_string(),
                }),
            }
        }
        "phone_number_name_update" => events.push(WebhookEvent::NameDecision {
            display_phone_number: text(value, "display_phone_number")
                .unwrap_or_default()
                .to_string(),
            decision: text(value, "decision").unwrap_or_default().to_string(),
        }),
        "phone_number_quality_update" => events.push(WebhookEvent::NumberQuality {
            display_phone_number: text(value, "display_phone_number")
                .unwrap_or_default()
                .to_string(),
            event: text(value, "event").unwrap_or_default().to_string(),
            current_limit: text(value, "current_limit").map(str::to_string),
        }),
        "account_update" if value.get("volume_tier_info").is_some() => {
            let info = &value["volume_tier_info"];
            let field = |name| text(info, name).unwrap_or_default().to_string();
            events.push(WebhookEvent::VolumeTier {
                account,
                category: field("pricing_category"),
                region: field("region"),
                tier: field("tier"),
                effective_month: field("effective_month"),
            })
        }
        "account_update" => {
            let restrictions: Vec<&str> = items(value, "restriction_info")
                .iter()
                .filter_map(|r| text(r, "restriction_type"))
                .collect();
            let detail = value
                .get("ban_info")
                .and_then(|b| text(b, "waba_ban_state"))
                .map(str::to_string)
                .unwrap_or_else(|| restrictions.join(","));
            events.push(WebhookEvent::AccountUpdate {
                account,
                event: text(value, "event").unwrap_or_default().to_string(),
                detail,
            })
        }
        "business_capability_update" => {
            let limit = text(value, "max_daily_conversations_per_business").or_else(|| {
                value
                    .get("max_daily_conversation_per_phone")
                    .and_then(Value::as_i64)
                    .and_then(tier_of_integer)
            });
            events.push(match limit {
                Some(limit) => WebhookEvent::CapabilityUpdate {
                    account,
                    limit: limit.to_string(),
                },
                // Only the numbers-per-business counts changed: nothing wagate enforces.
                None => WebhookEvent::Ignored {
                    field: field.to_string(),
                },
            })
        }
        other => events.push(WebhookEvent::Ignored {
            field: other.to_string(),
        }),
    }
    Ok(())
}

/// Every event in one webhook POST, in order.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<WebhookEvent>, ApiError> {
    Ok(events_of(&parse_envelope(body)?)?.events)
}

/// A `messages` change as written, with the account and number it is for: what forwarding it
/// to the number's tenant needs, so that nothing is read twice.
pub struct MessagesChange<'a> {
    /// The entry's id (the WhatsApp Business Account) as Meta wrote it.
    pub account: Option<&'a RawValue>,
    pub change: &'a RawValue,
    pub number: PhoneNumberId,
}

/// The fields of Meta's Groups API webhooks: each concerns one business number (its
/// `metadata.phone_number_id`) and goes to that number's tenant as written.
pub const GROUP_FIELDS: [&str; 4] = [
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
];

/// A webhook POST read: its events in order, and its `messages` changes (and groups' news)
/// as written, each with the number it concerns.
pub struct WebhookRead<'a> {
    pub events: Vec<WebhookEvent>,
    pub messages_changes: Vec<MessagesChange<'a>>,
}

/// A webhook POST's body read into its envelope, for [`events_of`] and whatever else reads it.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    read_body(body)
}

/// Every event in a webhook POST, in order, and its `messages` changes.
pub fn events_of<'a>(envelope: &Envelope<'a>) -> Result<WebhookRead<'a>, ApiError> {
    if text_of(&envelope.object) != Some("whatsapp_business_account") {
        return Err(ApiError::invalid_parameter(
            "object must be \"whatsapp_business_account\"",
        ));
    }
    let mut events = Vec::new();
    let mut messages_changes = Vec::new();
    for entry in envelope.entries() {
        // The entry's id is the WhatsApp Business Account the changes belong to.
        let account = AccountId(
            entry
                .id
                .and_then(|id| read_part::<Text>(id, "entry[].id").ok())
                .and_then(|id| id.as_str().parse().ok())
                .unwrap_or(0),
        );
        for raw in entry.changes() {
            let change = Change::read(raw)?;
            let field = change
                .field()
                .ok_or_else(|| ApiError::missing_parameter("changes[].field is missing"))?;
            let value = change
                .value
                .ok_or_else(|| ApiError::missing_parameter("changes[].value is missing"))?;
            if field == "messages" {
                let number = messages_field(value, &mut events)?;
                messages_changes.push(MessagesChange {
                    account: entry.id,
                    change: raw,
                    number,
                });
            } else if GROUP_FIELDS.contains(&field) {
                // A group's news: applied to the group, and for the tenant of the number it
                // concerns, as written.
                let value: GroupsValue = read_part(value, field)?;
                let number = number_in(value.metadata.as_ref())?;
                messages_changes.push(MessagesChange {
                    account: entry.id,
                    change: raw,
                    number,
                });
                for item in value.groups.into_iter().flatten() {
                    events.push(WebhookEvent::GroupChange {
                        number,
                        field: field.to_string(),
                        item,
                    });
                }
            } else {
                let value: Value = read_part(value, field)?;
                change_of(account, field, &value, &mut events)?;
            }
        }
    }
    Ok(WebhookRead {
        events,
        messages_changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(field: &str, value: &str) -> String {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","time":1739321024,"changes":[{{"field":"{field}","value":{value}}}]}}]}}"#
        )
    }

    #[test]
    fn a_group_s_news_goes_to_the_number_it_concerns_as_written() {
        let body = envelope(
            "group_participants_update",
            r#"{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001001","phone_number_id":"1001"},"groups":[{"group_id":"G1","type":"group_participants_add"}]}"#,
        );
        let envelope_read = parse_envelope(body.as_bytes()).unwrap();
        let read = events_of(&envelope_read).unwrap();
        assert_eq!(read.messages_changes.len(), 1);
        assert_eq!(read.messages_changes[0].number, PhoneNumberId(1001));
        assert!(read.messages_changes[0]
            .change
            .get()
            .contains("group_participants_add"));
        assert!(
            matches!(&read.events[..], [WebhookEvent::GroupChange { field, item, number }]
                if field == "group_participants_update" && item["group_id"] == "G1"
                    && *number == PhoneNumberId(1001))
        );
        let nowhere = envelope("group_lifecycle_update", r#"{"groups":[]}"#);
        assert!(events_of(&parse_envelope(nowhere.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn a_group_message_opens_the_group_s_window_and_a_group_status_names_the_participant() {
        let body = envelope(
            "messages",
            r#"{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1001"},
              "messages":[{"from":"16505551234","group_id":"G1","id":"wamid.in","timestamp":"1750000000","type":"text","text":{"body":"hi"}}],
              "statuses":[{"id":"wamid.out","status":"read","timestamp":"1750000001","recipient_id":"G1",
                "recipient_type":"group","recipient_participant_id":"16505551235"}]}"#,
        );
        let read = events_of(&parse_envelope(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            read.events[0],
            WebhookEvent::GroupInbound {
                number: PhoneNumberId(1001),
                group: "G1".into(),
                wamid: "wamid.in".into(),
                at: 1_750_000_000
            }
        );
        let WebhookEvent::Status {
            recipient, group, ..
        } = &read.events[1]
        else {
            panic!("{:?}", read.events[1]);
        };
        assert_eq!(*recipient, None);
        assert_eq!(
            *group,
            Some(GroupRecipient {
                group: "G1".into(),
                participant: Some("16505551235".into())
            })
        );
    }

    #[test]
    fn inbound_text_button_and_interactive() {
        let body = envelope(
            "messages",
            r#"{"messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
          "contacts":[{"profile":{"name":"Sheena"},"wa_id":"16505551234"}],
          "messages":[
            {"from":"16505551234","id":"wamid.1","timestamp":"1749416383","type":"text","text":{"body":"Does it come in blue?"}},
            {"from":"16505551234","id":"wamid.2","type":"button","button":{"payload":"STOP_PROMOS","text":"Stop promotions"}},
            {"from":"16505551234","id":"wamid.3","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"keep","title":"Keep"}}},
            {"from":"16505551234","id":"wamid.4","type":"image","image":{"id":"9","mime_type":"image/jpeg"}}]}"#,
        );
        let events = parse_webhook(body.as_bytes()).unwrap();
        let contents: Vec<_> = events
            .iter()
            .map(|e| match e {
                WebhookEvent::Inbound { message, .. } => message.content.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            contents,
            vec![
                InboundContent::Text("Does it come in blue?".into()),
                InboundContent::Button {
                    payload: "STOP_PROMOS".into()
                },
                InboundContent::InteractiveReply { id: "keep".into() },
                InboundContent::Other,
            ]
        );
        let WebhookEvent::Inbound { wamid, message } = &events[0] else {
            unreachable!()
        };
        assert_eq!(
            (wamid.as_str(), message.number),
            ("wamid.1", PhoneNumberId(106_540_352_242_922))
        );
    }

    #[test]
    fn statuses_with_failure_codes() {
        let body = envelope(
            "messages",
            r#"{"messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
          "statuses":[
            {"id":"wamid.9","status":"sent","timestamp":"1750030073","recipient_id":"16505551234","biz_opaque_callback_data":"campaign-42",
             "pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}},
            {"id":"wamid.9","status":"failed","timestamp":"1750030080","recipient_id":"16505551234",
             "errors":[{"code":131050,"title":"User stopped marketing messages"}]}]}"#,
        );
        let events = parse_webhook(body.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        let WebhookEvent::Status {
            status,
            errors,
            biz_opaque_callback_data,
            recipient,
            ..
        } = &events[1]
        else {
            panic!()
        };
        assert_eq!(
            (*status, errors.as_slice()),
            (DeliveryStatus::Failed, &[131_050][..])
        );
        assert_eq!(
            *recipient,
            Some(Msisdn::from_digits(16_505_551_234).unwrap())
        );
        assert!(biz_opaque_callback_data.is_none());
        assert!(
            matches!(&events[0], WebhookEvent::Status { biz_opaque_callback_data: Some(d), .. } if d == "campaign-42")
        );
        assert!(matches!(
            &events[0],
            WebhookEvent::Status { pricing: Some(p), .. }
                if p.billable && p.kind == "regular" && p.category == "marketing"
        ));
    }

    #[test]
    fn management_fields() {
        let preference = envelope(
            "user_preferences",
            r#"{"messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
          "user_preferences":[{"wa_id":"16505551234","detail":"User requested to stop marketing messages","category":"marketing_messages","value":"stop","timestamp":1731705721}]}"#,
        );
        assert!(matches!(
            parse_webhook(preference.as_bytes()).unwrap()[0],
            WebhookEvent::UserPreference {
                change: ConsentChange::MarketingOptOut,
                ..
            }
        ));
        let status = envelope(
            "message_template_status_update",
            r#"{"event":"PAUSED","message_template_id":594425479261596,
          "message_template_name":"order_update","message_template_language":"en_US","reason":"NONE","other_info":{"title":"FIRST_PAUSE"}}"#,
        );
        assert!(
            matches!(&parse_webhook(status.as_bytes()).unwrap()[0], WebhookEvent::TemplateStatus { status: TemplateStatus::Paused, name, .. } if name == "order_update")
        );
        let quality = envelope(
            "message_template_quality_update",
            r#"{"previous_quality_score":"GREEN","new_quality_score":"RED",
          "message_template_id":1,"message_template_name":"order_update","message_template_language":"en_US"}"#,
        );
        assert!(matches!(
            parse_webhook(quality.as_bytes()).unwrap()[0],
            WebhookEvent::TemplateQuality {
                quality: Quality::Red,
                ..
            }
        ));
        let number = envelope(
            "phone_number_quality_update",
            r#"{"display_phone_number":"16505551111","event":"FLAGGED","current_limit":"TIER_10K"}"#,
        );
        assert!(
            matches!(&parse_webhook(number.as_bytes()).unwrap()[0], WebhookEvent::NumberQuality { event, current_limit: Some(limit), .. } if event == "FLAGGED" && limit == "TIER_10K")
        );
        let capability = |value: &str| {
            parse_webhook(envelope("business_capability_update", value).as_bytes()).unwrap()
        };
        assert!(matches!(
            &capability(r#"{"max_daily_conversations_per_business":"TIER_2K","max_phone_numbers_per_business":20}"#)[0],
            WebhookEvent::CapabilityUpdate { limit, .. } if limit == "TIER_2K"
        ));
        assert!(matches!(
            &capability(r#"{"max_daily_conversation_per_phone":-1}"#)[0],
            WebhookEvent::CapabilityUpdate { limit, .. } if limit == "TIER_UNLIMITED"
        ));
        for nothing_enforced in [
            r#"{"max_phone_numbers_per_business":20}"#,
            r#"{"max_daily_conversation_per_phone":1234}"#,
        ] {
            assert!(matches!(
                capability(nothing_enforced)[0],
                WebhookEvent::Ignored { .. }
            ));
        }
        let unknown = envelope("smb_app_state_sync", "{}");
        assert!(matches!(
            parse_webhook(unknown.as_bytes()).unwrap()[0],
            WebhookEvent::Ignored { .. }
        ));
    }

    #[test]
    fn a_volume_tier_update_is_read_as_meta_s_tier() {
        let body = envelope(
            "account_update",
            r#"{"event":"VOLUME_BASED_PRICING_TIER_UPDATE","volume_tier_info":{
              "tier":"25000001:50000000","pricing_category":"UTILITY","region":"India",
              "effective_month":"2026-12"}}"#,
        );
        let events = parse_webhook(body.as_bytes()).unwrap();
        assert!(
            matches!(&events[..], [WebhookEvent::VolumeTier { category, region, tier, effective_month, .. }]
                if category == "UTILITY" && region == "India" && tier == "25000001:50000000"
                    && effective_month == "2026-12"),
            "{events:?}"
        );
    }

    #[test]
    fn malformed_webhooks_are_refused() {
        assert!(parse_webhook(b"{").is_err());
        assert!(parse_webhook(br#"{"object":"page","entry":[]}"#).is_err());
        let no_metadata = envelope(
            "messages",
            r#"{"messages":[{"from":"16505551234","type":"text","text":{"body":"x"}}]}"#,
        );
        assert_eq!(
            parse_webhook(no_metadata.as_bytes()).unwrap_err().code,
            131_008
        );
    }

    #[test]
    fn statuses_are_read_with_escapes_and_fields_wagate_does_not_use() {
        let value = r#"{"messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
          "statuses":[{"id":"wamid.HBgL\u003d\u003d","status":"delivered","timestamp":"1750030073",
            "recipient_id":"16505551234","conversation":{"id":"c1","origin":{"type":"utility"}},
            "pricing":{"billable":true},"biz_opaque_callback_data":"a\"b"}]}"#;
        let body = envelope("messages", value);
        let read = events_of(&parse_envelope(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            read.events,
            [WebhookEvent::Status {
                number: PhoneNumberId(106_540_352_242_922),
                wamid: "wamid.HBgL==".into(),
                status: DeliveryStatus::Delivered,
                recipient: Some(Msisdn::from_digits(16_505_551_234).unwrap()),
                errors: Vec::new(),
                biz_opaque_callback_data: Some("a\"b".into()),
                pricing: Some(StatusPricing {
                    billable: true,
                    kind: "regular".into(),
                    category: String::new(),
                }),
                free_entry_until: None,
                group: None,
            }]
        );
        let [change] = &read.messages_changes[..] else {
            panic!("one messages change")
        };
        assert_eq!(change.number, PhoneNumberId(106_540_352_242_922));
        assert!(change.change.get().contains("a\\\"b"));
        assert_eq!(
            change.account.map(RawValue::get),
            Some("\"102290129340398\"")
        );
        let not_a_list = envelope(
            "messages",
            r#"{"metadata":{"phone_number_id":"106540352242922"},"statuses":{"id":"x"}}"#,
        );
        assert_eq!(parse_webhook(not_a_list.as_bytes()).unwrap_err().code, 100);
    }
}
