//! The consent history over HTTP: `GET /wagate/admin/contacts/{number}/{to}/history` (one
//! person's events with the business of `number`, oldest first) and
//! `GET /wagate/admin/consent/export?phone_number_id=..[&to=..][&format=ndjson|csv]` (the events
//! of the whole business, or of one person, streamed: the store is scanned as the client reads,
//! one chunk at a time, so a million events are never held together).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::admin_access::{admin_error, admin_only, parse_number};
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, App};
use wagate_cloud_api::error::ApiError;
use wagate_durable::consent_history::ConsentRecord;
use wagate_rules::contact_events::ConsentChange;
use wagate_rules::ids::Msisdn;
use wagate_rules::topics::{TopicNames, TopicSet};

/// One event as answered.
#[derive(Serialize)]
pub(crate) struct Event<'a> {
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

fn described<'a>(record: &ConsentRecord, names: &'a TopicNames) -> Event<'a> {
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
}

/// For each topic (and `all`, the whole consent), the event that last set it: what a person's
/// current consent rests on. Only `number`'s own events when its consent is per number.
pub(crate) fn set_by<'a>(
    records: &[ConsentRecord],
    names: &'a TopicNames,
    only: Option<wagate_rules::ids::PhoneNumberId>,
) -> std::collections::BTreeMap<&'a str, Event<'a>> {
    // The last record of each, described once at the end.
    let mut latest = std::collections::BTreeMap::new();
    for record in records {
        if only.is_some_and(|number| number != record.number) {
            continue;
        }
        let (whole, topics) = match record.change {
            ConsentChange::OptIn | ConsentChange::OptOut => (true, TopicSet(u8::MAX)),
            ConsentChange::MarketingOptOut | ConsentChange::MarketingOptIn => {
                (false, TopicSet::MARKETING)
            }
            ConsentChange::TopicsOptOut(topics) | ConsentChange::TopicsOptIn(topics) => {
                (false, topics)
            }
        };
        if whole {
            latest.insert("all", record);
        }
        for name in names.names(topics) {
            latest.insert(name, record);
        }
    }
    latest
        .into_iter()
        .map(|(name, record)| (name, described(record, names)))
        .collect()
}

fn person(to: &str) -> Result<Msisdn, ApiErrorResponse> {
    Msisdn::parse(to)
        .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(format!("to: {e}"))))
}

pub(crate) async fn history(
    State(app): State<App>,
    Path((number, to)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let id = parse_number(&number)?;
    let person = person(&to)?;
    let worker = app.clone();
    let records = blocking(move || {
        worker
            .wagate
            .consent_history(id, person)
            .map_err(admin_error)
    })
    .await?;
    let names = app.wagate.registry().topic_names();
    let events: Vec<Event> = records.iter().map(|r| described(r, names)).collect();
    Ok(reply::ok(&serde_json::json!({ "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    phone_number_id: String,
    #[serde(default)]
    to: Option<String>,
    /// `ndjson` (the default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// Bytes gathered before a chunk goes to the client.
const CHUNK_BYTES: usize = 64 << 10;
/// Chunks waiting for a slow client at most (so at most this many chunks are held).
const CHUNKS_AHEAD: usize = 4;
/// How long a chunk may wait for the client before the export is cut off.
const CLIENT_WAIT: Duration = Duration::from_secs(30);
const CSV_HEADER: &str = "to,at,phone_number_id,change,topics,source,evidence\n";

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn line(csv: bool, person: Msisdn, event: &Event, out: &mut Vec<u8>) {
    let to = person.digits().to_string();
    if csv {
        let evidence = event
            .evidence
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let fields = [
            to,
            event.at.to_string(),
            event.phone_number_id.clone(),
            event.change.to_string(),
            event.topics.join(";"),
            event.source.to_string(),
            evidence,
        ];
        let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.extend_from_slice(fields.join(",").as_bytes());
    } else {
        let mut object = serde_json::to_value(event).unwrap_or_default();
        object["to"] = serde_json::Value::String(to);
        out.extend_from_slice(object.to_string().as_bytes());
    }
    out.push(b'\n');
}

pub(crate) async fn export(
    State(app): State<App>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let Query(query) = query.map_err(super::admin_access::query_refused)?;
    let id = parse_number(&query.phone_number_id)?;
    let one = query.to.as_deref().map(person).transpose()?;
    let csv = match query.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "format must be ndjson or csv, not '{other}'"
            ))
            .into())
        }
    };
    if app.wagate.registry().number(id).is_none() {
        return Err(reply::no_such_object(&query.phone_number_id).into());
    }
    let (chunks, received) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_AHEAD);
    let worker = app.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let names = worker.wagate.registry().topic_names();
        let mut buffer = if csv {
            CSV_HEADER.as_bytes().to_vec()
        } else {
            Vec::new()
        };
        // Hands a chunk to the client, waiting for it at most CLIENT_WAIT: false when the
        // client is gone or too slow (the export stops).
        let hand = |chunk: Vec<u8>| {
            runtime
                .block_on(tokio::time::timeout(CLIENT_WAIT, chunks.send(chunk)))
                .is_ok_and(|sent| sent.is_ok())
        };
        let mut going = true;
        let scanned = worker
            .wagate
            .each_consent_event(id, one, &mut |person, record| {
                line(csv, person, &described(&record, names), &mut buffer);
                if buffer.len() >= CHUNK_BYTES {
                    going = hand(std::mem::take(&mut buffer));
                }
                going
            });
        match scanned {
            Ok(()) if going => {
                if !buffer.is_empty() {
                    hand(buffer);
                }
            }
            Ok(()) => tracing::warn!("a consent export stopped: its client went away or stalled"),
            Err(error) => tracing::error!(%error, "a consent export failed reading the store"),
        }
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        received
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), received))
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(super::csv_field("web_form"), "web_form");
        assert_eq!(super::csv_field(r#"{"a":"b,c"}"#), r#""{""a"":""b,c""}""#);
    }
}
