//! Consent changes through the admin API: `POST /wagate/admin/contacts/consent` (one change, for
//! one person or many, all checked before any is applied) and `POST /wagate/admin/consent/import`
//! (many rows, NDJSON or CSV: each row applied wholly or not at all, a result line for each
//! refused row; the body taken part by part as it arrives, never held whole). A row names the number, the person(s), the change, its topics, where the
//! consent was collected and the proof.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::admin_access::{admin_only, parse_number};
use super::body_read::{read_request_body, BodyFrames, LineParts};
use super::metrics::bump;
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, require_content_type, App};
use wagate_cloud_api::error::ApiError;
use wagate_durable::consent_history::MAX_EVIDENCE_BYTES;
use wagate_durable::Consent;
use wagate_rules::contact_events::ConsentChange;
use wagate_rules::ids::Msisdn;
use wagate_rules::state::contact::ConsentSource;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One consent change as the API takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    phone_number_id: String,
    /// One person or many: all are checked before any is changed.
    to: OneOrMany,
    /// `opt_in`, `opt_out`, `marketing_opt_out` or `marketing_opt_in`.
    change: String,
    /// With `opt_in` or `opt_out`: only these topics (marketing, utility, authentication, or
    /// one of `consent.topics`). An opt-in naming topics after a global opt-out consents to
    /// those alone.
    #[serde(default)]
    topics: Option<Vec<String>>,
    /// Where the consent was collected: `api` (the default), `web_form`, `sms`, `ivr`,
    /// `in_person` or `paper`.
    #[serde(default)]
    source: Option<String>,
    /// The proof, kept in the history with the event (at most 2,048 bytes as JSON).
    #[serde(default)]
    evidence: Option<Evidence>,
    /// An opt-in the person gave after they were erased: the only one that takes an erased
    /// person back (with evidence); any other opt-in for them is refused as `erased`.
    #[serde(default)]
    after_erasure: bool,
}

/// What a caller may keep as proof of consent.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    form_url: Option<String>,
    /// The wording the person agreed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// A document's reference (a signed form, a recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    document: Option<String>,
}

/// The changes a body asks for, every field checked (nothing is applied yet).
fn commands(app: &App, body: ConsentBody) -> Result<Vec<Consent>, ApiError> {
    let number = parse_number(&body.phone_number_id)
        .map_err(|_| ApiError::invalid_parameter("phone_number_id is not a number's id"))?;
    if app.wagate.registry().number(number).is_none() {
        return Err(ApiError::invalid_parameter(format!(
            "phone number id {} is not registered with wagate",
            body.phone_number_id
        )));
    }
    let people = match body.to {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    };
    let people = people
        .iter()
        .map(|to| Msisdn::parse(to))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid_parameter(format!("to: {e}")))?;
    let topics = match &body.topics {
        Some(names) if names.is_empty() => {
            return Err(ApiError::invalid_parameter("topics: name at least one"))
        }
        Some(names) => Some(
            app.wagate
                .registry()
                .topic_names()
                .topics(names.iter().map(String::as_str))
                .map_err(|e| ApiError::invalid_parameter(e.to_string()))?,
        ),
        None => None,
    };
    let change = match (body.change.as_str(), topics) {
        ("opt_in", Some(topics)) => ConsentChange::TopicsOptIn(topics),
        ("opt_out", Some(topics)) => ConsentChange::TopicsOptOut(topics),
        (_, Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "topics go with change opt_in or opt_out",
            ))
        }
        ("opt_in", None) => ConsentChange::OptIn,
        ("opt_out", None) => ConsentChange::OptOut,
        ("marketing_opt_out", None) => ConsentChange::MarketingOptOut,
        ("marketing_opt_in", None) => ConsentChange::MarketingOptIn,
        (other, None) => {
            return Err(ApiError::invalid_parameter(format!(
            "change must be opt_in, opt_out, marketing_opt_out or marketing_opt_in, not '{other}'"
        )))
        }
    };
    let source = match body.source.as_deref() {
        None => ConsentSource::Api,
        Some(name) => ConsentSource::of_caller(name).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "source must be api, web_form, sms, ivr, in_person or paper, not '{name}'"
            ))
        })?,
    };
    let evidence = match &body.evidence {
        None => None,
        Some(evidence) => {
            let text = serde_json::to_string(evidence).unwrap_or_default();
            if text.len() > MAX_EVIDENCE_BYTES {
                return Err(ApiError::invalid_parameter(format!(
                    "evidence is {} bytes as JSON; at most {MAX_EVIDENCE_BYTES}",
                    text.len()
                )));
            }
            Some(Arc::<str>::from(text))
        }
    };
    Ok(people
        .into_iter()
        .map(|person| Consent {
            number,
            person,
            change,
            source,
            evidence: evidence.clone(),
            after_erasure: body.after_erasure,
        })
        .collect())
}

pub(crate) async fn consent(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    require_content_type(&headers, "application/json")?;
    let bytes = read_request_body(&app, body, app.config.http.max_body_bytes).await?;
    let body: ConsentBody = serde_json::from_slice(&bytes).map_err(|e| {
        bump(&app.metrics.invalid);
        ApiError::invalid_parameter(format!("the body does not fit this endpoint: {e}"))
    })?;
    let changes = commands(&app, body)?;
    let worker = app.clone();
    let changed = blocking(move || {
        worker
            .wagate
            .record_consents(changes)
            .map_err(|e| ApiErrorResponse::from(ApiError::from(&e)))
    })
    .await?;
    if let Some(Err(refusal)) = changed.iter().find(|r| r.is_err()) {
        return Err(ApiError::from(refusal).into());
    }
    Ok(reply::ok(
        &json!({ "success": true, "changed": changed.len() }),
    ))
}

/// Rows applied in one group of commits.
const IMPORT_BATCH: usize = 10_000;

/// A CSV row as a body: `phone_number_id,to,change,topics,source,evidence` (topics joined by
/// `;`, evidence as JSON; the last three may be empty).
fn csv_row(fields: &[String]) -> Result<ConsentBody, String> {
    let field = |i: usize| fields.get(i).map(|f| f.trim()).unwrap_or_default();
    if fields.len() < 3 || fields.len() > 6 {
        return Err(format!("a row has 3 to 6 fields, not {}", fields.len()));
    }
    let evidence = match field(5) {
        "" => None,
        text => Some(serde_json::from_str(text).map_err(|e| format!("evidence: {e}"))?),
    };
    Ok(ConsentBody {
        phone_number_id: field(0).to_string(),
        to: OneOrMany::One(field(1).to_string()),
        change: field(2).to_string(),
        topics: match field(3) {
            "" => None,
            topics => Some(topics.split(';').map(str::to_string).collect()),
        },
        source: Some(field(4)).filter(|s| !s.is_empty()).map(str::to_string),
        evidence,
        after_erasure: false,
    })
}

/// The fields of one CSV line (quotes doubled inside quoted fields).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field does not end".into());
    }
    fields.push(field);
    Ok(fields)
}

pub(crate) async fn import(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let csv = if content_type.starts_with("text/csv") {
        true
    } else if content_type.starts_with("application/x-ndjson") {
        false
    } else {
        return Err(ApiError::new(
            415,
            100,
            "Invalid parameter",
            "an import is application/x-ndjson or text/csv",
            "unsupported_media_type",
        )
        .into());
    };
    let mut frames = BodyFrames::new(
        body,
        app.config.http.max_bulk_bytes,
        app.config.http.body_read_timeout(),
        &app.metrics,
    );
    frames.refuse_if_announced_past_limit().await?;
    let mut parts = LineParts::new(frames, IMPORT_PART_BYTES);
    // The part being read and the answer so far, under `http.max_body_bytes_held`.
    let mut claim = app.bodies.claim();
    let mut answer = ImportAnswer::default();
    let stopped = loop {
        let part = match parts.next(&mut claim).await {
            Ok(Some(part)) => part,
            Ok(None) => break None,
            Err(error) => break Some(ApiErrorResponse::from(error)),
        };
        let taken = part.len();
        let worker = app.clone();
        let (first_line, header_due) = (answer.lines, csv && answer.lines == 0);
        let done = blocking(move || Ok(import_part(&worker, csv, header_due, first_line, &part)))
            .await
            .and_then(|done| done);
        let written = answer.out.len();
        match done {
            Ok(done) => answer.add(done),
            Err(why) => break Some(why),
        }
        claim.release(taken);
        claim.hold(answer.out.len() - written);
    };
    match stopped {
        Some(why) if answer.lines == 0 => Err(why),
        Some(ApiErrorResponse(error, _)) => {
            // Every line before is answered; the caller sends again from this one.
            answer.out.push_str(
                &json!({ "line": answer.lines + 1, "unread": true, "error": error.details })
                    .to_string(),
            );
            answer.out.push('\n');
            Ok(answer.into_response())
        }
        None => Ok(answer.into_response()),
    }
}

/// Bytes of whole lines parsed and applied together (in group commits of [`IMPORT_BATCH`]).
const IMPORT_PART_BYTES: usize = 1 << 20;

/// An import's answer so far: a line per refused row, and the totals.
#[derive(Default)]
struct ImportAnswer {
    out: String,
    /// Lines read (blank ones too: a refused row's number is its line in the file).
    lines: usize,
    applied: usize,
    refused: usize,
}

/// What one part of an import did.
struct PartDone {
    lines: usize,
    applied: usize,
    /// A line per refused row, in line order.
    refused: Vec<serde_json::Value>,
}

impl ImportAnswer {
    fn add(&mut self, done: PartDone) {
        self.lines += done.lines;
        self.applied += done.applied;
        self.refused += done.refused.len();
        for line in done.refused {
            self.out.push_str(&line.to_string());
            self.out.push('\n');
        }
    }

    fn into_response(mut self) -> Response {
        self.out
            .push_str(&json!({ "applied": self.applied, "refused": self.refused }).to_string());
        self.out.push('\n');
        let mut response = Response::new(Body::from(self.out));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-ndjson"),
        );
        response
    }
}

/// Checks a part's rows (a CSV's header first, when `header_due`) and applies the good ones,
/// each wholly, in group commits of [`IMPORT_BATCH`] changes.
fn import_part(
    app: &App,
    csv: bool,
    header_due: bool,
    first_line: usize,
    part: &[u8],
) -> Result<PartDone, ApiErrorResponse> {
    let mut lines: Vec<&[u8]> = part.split(|&b| b == b'\n').collect();
    if part.ends_with(b"\n") {
        lines.pop();
    }
    let mut refused = Vec::new();
    let mut rows = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = first_line + index + 1;
        let line = std::str::from_utf8(line)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .map_err(|_| format!("line {number} is not UTF-8"));
        if header_due && index == 0 {
            if line.as_deref().map(str::trim) != Ok(CSV_HEADER) {
                return Err(ApiError::invalid_parameter(format!(
                    "a CSV import starts with the header {CSV_HEADER}"
                ))
                .into());
            }
            continue;
        }
        let body = line.and_then(|line| {
            if line.trim().is_empty() {
                Ok(None)
            } else if csv {
                csv_fields(line)
                    .and_then(|fields| csv_row(&fields))
                    .map(Some)
            } else {
                serde_json::from_str::<ConsentBody>(line)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        });
        match body
            .map_err(ApiError::invalid_parameter)
            .and_then(|b| b.map(|b| commands(app, b)).transpose())
        {
            Ok(Some(changes)) => rows.push((number, changes)),
            Ok(None) => {}
            Err(error) => refused.push(json!({ "line": number, "error": error.details })),
        }
    }
    let mut applied = 0;
    let mut rows = rows.into_iter().peekable();
    let mut batch: Vec<(usize, Vec<Consent>)> = Vec::new();
    let mut size = 0;
    while let Some(row) = rows.next() {
        size += row.1.len();
        batch.push(row);
        if size < IMPORT_BATCH && rows.peek().is_some() {
            continue;
        }
        let counts: Vec<(usize, usize)> = batch
            .iter()
            .map(|(line, changes)| (*line, changes.len()))
            .collect();
        let changes: Vec<Consent> = std::mem::take(&mut batch)
            .into_iter()
            .flat_map(|(_, c)| c)
            .collect();
        let answers = app
            .wagate
            .record_consents(changes)
            .map_err(|e| ApiErrorResponse::from(ApiError::from(&e)))?;
        let mut answers = answers.into_iter();
        for (line, count) in counts {
            let row: Vec<_> = answers.by_ref().take(count).collect();
            match row.iter().find_map(|answer| answer.as_ref().err()) {
                None => applied += 1,
                Some(refusal) => {
                    refused.push(json!({ "line": line, "error": refusal.to_string() }))
                }
            }
        }
        size = 0;
    }
    refused.sort_by_key(|r| r["line"].as_u64());
    Ok(PartDone {
        lines: lines.len(),
        applied,
        refused,
    })
}

const CSV_HEADER: &str = "phone_number_id,to,change,topics,source,evidence";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_on_commas_outside_quotes() {
        let fields = csv_fields(
            r#"1001,+16505550001,opt_in,newsletter;utility,paper,"{""document"":""a,b""}""#,
        )
        .unwrap();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[5], r#"{"document":"a,b"}"#);
        assert!(csv_fields(r#"1001,"open"#).is_err());
        let row = csv_row(&fields).unwrap();
        assert_eq!(row.topics.map(|t| t.len()), Some(2));
        assert!(csv_row(&fields[..2]).is_err());
    }
}
