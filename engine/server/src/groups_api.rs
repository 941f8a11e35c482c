//! The Groups API through wagate's base URL: each call on a number's `groups` or on one of its
//! groups is judged by the profile's group rules before it goes to Meta (a new group beyond the
//! number's count, a subject too long, approving more people than the group holds, adding
//! anyone where people join by link only, or without their recorded opt-in for groups), then
//! passed through as the caller wrote it; what Meta's answer settles goes into wagate's mirror
//! (a creation under way, a new invite link, a new subject). Everything else about a group
//! reaches the mirror by Meta's webhooks.

use axum::http::Method;
use serde_json::Value;

use super::state::App;
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_durable::groups::Creating;
use wagate_durable::Wagate;
use wagate_rules::contact_events::ConsentChange;
use wagate_rules::groups::{GroupRefusal, GroupRules};
use wagate_rules::ids::{Msisdn, PhoneNumberId};

/// A group call that passed, with what its answer settles.
pub(crate) enum Followup {
    /// A new group asked for `number` (its answer's `request_id` notes the creation).
    Create { number: PhoneNumberId, body: Value },
    /// A group's subject or description changed.
    Settings { group: String, body: Value },
    /// A group's invite link read or reset.
    InviteLink { group: String },
    /// Join requests rejected (Meta sends no webhook for a rejection).
    Rejected { group: String },
}

/// A group rule broken, in Meta's error shape.
pub(crate) fn refused(refusal: GroupRefusal) -> ApiError {
    let title = match refusal.meta_code() {
        131_047 => "Re-engagement message",
        131_051 => "Unsupported message type",
        _ => "Invalid parameter",
    };
    ApiError::new(
        400,
        refusal.meta_code(),
        title,
        refusal.to_string(),
        refusal.name(),
    )
}

/// The id and edge of `/{version}/{id}[/{edge}]`.
fn id_and_edge(path: &str) -> Option<(&str, Option<&str>)> {
    let mut segments = path.strip_prefix('/')?.split('/').skip(1);
    let id = segments.next()?;
    let edge = segments.next();
    segments.next().is_none().then_some((id, edge))
}

/// Whether `id` is a group of one of the tenant's numbers.
pub(crate) fn owns_group(app: &App, tenant: &Tenant, id: &str) -> bool {
    app.wagate
        .groups()
        .group(id)
        .is_some_and(|group| tenant.owns(group.number()))
}

/// Judges a call the tenant may make (its number or group) by the group rules; `Ok(None)` for
/// a call that is no group's.
pub(crate) fn check(
    app: &App,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Option<Followup>, ApiError> {
    let Some((id, edge)) = id_and_edge(path) else {
        return Ok(None);
    };
    let rules = &app.wagate.registry().profile().groups;
    let read = || serde_json::from_slice::<Value>(body).unwrap_or_default();
    if edge == Some("groups") && *method == Method::POST {
        let Ok(number) = id.parse().map(PhoneNumberId) else {
            return Ok(None);
        };
        let body = read();
        check_texts(rules, &body)?;
        rules
            .check_create(
                app.wagate
                    .groups()
                    .count_of(number, app.wagate.now().unix_secs()),
            )
            .map_err(refused)?;
        return Ok(Some(Followup::Create { number, body }));
    }
    let Some(group) = app.wagate.groups().group(id) else {
        return Ok(None);
    };
    let followup = match (method.as_str(), edge) {
        ("POST", None) => {
            let body = read();
            check_texts(rules, &body)?;
            Some(Followup::Settings {
                group: group.id.clone(),
                body,
            })
        }
        ("POST", Some("join_requests")) => {
            let approving = read()["join_requests"].as_array().map_or(0, Vec::len);
            rules
                .check_room(group.participants.len(), approving)
                .map_err(refused)?;
            None
        }
        ("POST", Some("participants")) => {
            let body = read();
            let people: Vec<&str> = body["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["user"].as_str().or_else(|| p["wa_id"].as_str()))
                .collect();
            rules
                .check_add(people.iter().copied(), |person| {
                    opted_in_for_groups(&app.wagate, group.number(), person, rules)
                })
                .map_err(refused)?;
            rules
                .check_room(group.participants.len(), people.len())
                .map_err(refused)?;
            None
        }
        ("DELETE", Some("join_requests")) => Some(Followup::Rejected {
            group: group.id.clone(),
        }),
        ("GET" | "POST", Some("invite_link")) => Some(Followup::InviteLink {
            group: group.id.clone(),
        }),
        _ => None,
    };
    Ok(followup)
}

fn check_texts(rules: &GroupRules, body: &Value) -> Result<(), ApiError> {
    for field in ["subject", "description"] {
        if let Some(text) = body[field].as_str() {
            rules.check_text(field, text).map_err(refused)?;
        }
    }
    Ok(())
}

/// Whether `person` gave the business of `number` an opt-in for the profile's groups topic
/// that they have not withdrawn since: the latest consent event naming the topic (or
/// withdrawing everything) is an opt-in to it.
fn opted_in_for_groups(
    wagate: &Wagate,
    number: PhoneNumberId,
    person: &str,
    rules: &GroupRules,
) -> bool {
    let (Some(topic), Ok(person)) = (&rules.opt_in_topic, Msisdn::parse(person)) else {
        return false;
    };
    let Ok(topic) = wagate.registry().topic_names().topic(topic) else {
        return false;
    };
    let Ok(history) = wagate.consent_history(number, person) else {
        return false;
    };
    history
        .iter()
        .rev()
        .find_map(|event| match event.change {
            ConsentChange::TopicsOptIn(topics) if topics.contains(topic) => Some(true),
            ConsentChange::TopicsOptOut(topics) if topics.intersects(topic) => Some(false),
            ConsentChange::OptOut => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}

/// Applies what Meta's successful answer to a group call settles.
pub(crate) fn settle(app: &App, followup: Followup, answer: &[u8]) {
    let answer: Value = serde_json::from_slice(answer).unwrap_or_default();
    let groups = app.wagate.groups();
    let text = |body: &Value, name: &str| body[name].as_str().map(str::to_string);
    let written = match followup {
        Followup::Create { number, body } => {
            let Some(request_id) = text(&answer, "request_id") else {
                return;
            };
            groups.creating(Creating {
                request_id,
                number: number.0,
                subject: text(&body, "subject")
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                description: text(&body, "description").unwrap_or_default(),
                join_approval_mode: text(&body, "join_approval_mode")
                    .unwrap_or_else(|| "auto_approve".into()),
                at: app.wagate.now().unix_secs(),
            })
        }
        Followup::Settings { group, body } => groups
            .update(&group, |g| {
                let subject = text(&body, "subject");
                let description = text(&body, "description");
                let changed = subject.is_some() || description.is_some();
                if let Some(subject) = subject {
                    g.subject = subject;
                }
                if let Some(description) = description {
                    g.description = description;
                }
                changed
            })
            .map(|_| ()),
        Followup::Rejected { group } => {
            let rejected: Vec<String> = answer["rejected_join_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect();
            groups
                .update(&group, |g| {
                    let before = g.join_requests.len();
                    g.join_requests.retain(|id, _| !rejected.contains(id));
                    g.join_requests.len() != before
                })
                .map(|_| ())
        }
        Followup::InviteLink { group } => {
            let Some(link) = text(&answer, "invite_link") else {
                return;
            };
            groups
                .update(&group, |g| {
                    let changed = g.invite_link.as_deref() != Some(link.as_str());
                    g.invite_link = Some(link);
                    changed
                })
                .map(|_| ())
        }
    };
    if let Err(error) = written {
        // Meta's webhooks bring the same news; the mirror catches up with them.
        tracing::error!(%error, "a group's change could not be written to wagate's mirror");
    }
}
