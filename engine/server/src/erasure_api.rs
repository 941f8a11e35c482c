//! The right to erasure through the admin API: `DELETE /wagate/admin/contacts/{number}/{to}`
//! erases a person from the business that owns the number (every number of it), and
//! `GET /wagate/admin/audit` reads the audit log where each erasure is kept.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::admin_access::{admin_only, parse_number, query_refused};
use super::metrics::bump;
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, store_error, App};
use wagate_cloud_api::error::ApiError;
use wagate_rules::ids::Msisdn;

/// The longest name of who asked for an erasure the audit log keeps.
const MAX_ACTOR_CHARS: usize = 128;
/// The most audit entries one read answers.
const MAX_AUDIT_ENTRIES: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseQuery {
    /// Who asked (a person or a ticket), kept in the audit log; `admin` when not given.
    #[serde(default)]
    by: Option<String>,
}

pub(crate) async fn erase(
    State(app): State<App>,
    Path((number, to)): Path<(String, String)>,
    query: Result<Query<EraseQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let Query(query) = query.map_err(query_refused)?;
    let id = parse_number(&number)?;
    let Some(state) = app.wagate.registry().number(id) else {
        return Err(reply::no_such_object(&number).into());
    };
    let person = Msisdn::parse(&to)
        .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(format!("to: {e}"))))?;
    let by = query.by.unwrap_or_else(|| "admin".into());
    if by.is_empty() || by.chars().count() > MAX_ACTOR_CHARS {
        return Err(ApiError::invalid_parameter(format!(
            "by names who asked in 1 to {MAX_ACTOR_CHARS} characters"
        ))
        .into());
    }
    let worker = app.clone();
    let account = state.account;
    let erasure = blocking(move || {
        worker
            .wagate
            .erase(account, person, &by)
            .map_err(|e| ApiErrorResponse::from(ApiError::from(&e)))
    })
    .await?;
    bump(&app.metrics.erasures);
    Ok(reply::ok(&json!({ "success": true, "erasure": erasure })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Entries from this Unix second on.
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn audit(
    State(app): State<App>,
    query: Result<Query<AuditQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let Query(query) = query.map_err(query_refused)?;
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_AUDIT_ENTRIES {
        return Err(
            ApiError::invalid_parameter(format!("limit is 1 to {MAX_AUDIT_ENTRIES}")).into(),
        );
    }
    let worker = app.clone();
    let entries = blocking(move || {
        worker
            .wagate
            .audit_log(query.since, limit)
            .map_err(store_error)
    })
    .await?;
    Ok(reply::ok(&json!({ "data": entries })))
}
