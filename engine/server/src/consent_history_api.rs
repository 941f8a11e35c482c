//! `GET /wagate/admin/contacts/{number}/{to}/history`: a person's consent events with the
//! business of `number`, oldest first: when, through which number, what changed (the topics by
//! name) and where it came from.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::admin::{admin_error, admin_only, parse_number};
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, App};
use wagate_cloud_api::error::ApiError;
use wagate_rules::contact_events::ConsentChange;
use wagate_rules::ids::Msisdn;

/// One event as answered.
#[derive(Serialize)]
struct Event<'a> {
    /// Unix seconds.
    at: u64,
    phone_number_id: String,
    /// `opt_in`, `opt_out`, `marketing_opt_out`, `marketing_opt_in`, `topics_opt_out`,
    /// `topics_opt_in`.
    change: &'static str,
    /// The topics a topic change named.
    topics: Vec<&'a str>,
    source: &'static str,
    /// The caller's proof, as it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<serde_json::Value>,
}

pub(crate) async fn history(
    State(app): State<App>,
    Path((number, to)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let id = parse_number(&number)?;
    let person = Msisdn::parse(&to)
        .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(format!("to: {e}"))))?;
    let worker = app.clone();
    let records = blocking(move || {
        worker
            .wagate
            .consent_history(id, person)
            .map_err(admin_error)
    })
    .await?;
    let names = app.wagate.registry().topic_names();
    let events: Vec<Event> = records
        .iter()
        .map(|record| {
            let (change, topics) = match record.change {
                ConsentChange::OptIn => ("opt_in", Vec::new()),
                ConsentChange::OptOut => ("opt_out", Vec::new()),
                ConsentChange::MarketingOptOut => ("marketing_opt_out", Vec::new()),
                ConsentChange::MarketingOptIn => ("marketing_opt_in", Vec::new()),
                ConsentChange::TopicsOptOut(topics) => ("topics_opt_out", names.names(topics)),
                ConsentChange::TopicsOptIn(topics) => ("topics_opt_in", names.names(topics)),
            };
            Event {
                at: record.at.unix_secs(),
                phone_number_id: record.number.0.to_string(),
                change,
                topics,
                source: record.source.name(),
                evidence: record
                    .evidence
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok()),
            }
        })
        .collect();
    Ok(reply::ok(&serde_json::json!({ "events": events })))
}
