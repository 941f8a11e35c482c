//! A tenant's queued sends (scheduled for later, or waiting on the rules) through its own
//! token: `GET /wagate/v1/scheduled?phone_number_id=..[&limit=..]` lists a number's in due
//! order; `PATCH /wagate/v1/messages/{id}` moves one to another time (`send_at`, and a new
//! `expire_at` or `valid_for` when given); `DELETE /wagate/v1/messages/{id}` cancels one. Each
//! until the send is released: after, it is a message and is answered `not_queued`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::admin_access::query_refused;
use super::body_read::read_request_body;
use super::reply::{self, no_such_object, ApiErrorResponse};
use super::send::{counted, readable_number, QueuedView};
use super::send_options::{send_options, AskedOptions, Field};
use super::state::{blocking, require_content_type, store_error, App};
use super::tenants::Caller;
use wagate_cloud_api::error::ApiError;
use wagate_durable::message::parse_message_id;
use wagate_rules::ids::PhoneNumberId;

/// The most queued sends one list answers.
const MAX_LISTED: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    phone_number_id: String,
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(app): State<App>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    // A tenant its own numbers'; the admin (and the console) any number's.
    let caller = app.tenants.caller(&headers).map_err(|e| counted(&app, e))?;
    let Query(query) = query.map_err(query_refused)?;
    let number =
        readable_number(&app, &caller, &query.phone_number_id).map_err(|e| counted(&app, e))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LISTED {
        return Err(ApiError::invalid_parameter(format!("limit is 1 to {MAX_LISTED}")).into());
    }
    let worker = app.clone();
    let queued =
        blocking(move || worker.wagate.queued_of(number, limit).map_err(store_error)).await?;
    let data: Vec<QueuedView> = queued.iter().map(QueuedView::of).collect();
    Ok(reply::ok(&json!({ "data": data })))
}

/// The queued send `id` names, if the caller may change it: its number.
async fn owned_queued(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<(u64, PhoneNumberId), ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let caller = app.tenants.caller(headers).map_err(|e| counted(app, e))?;
    let Some(message_id) = parse_message_id(id) else {
        return Err(counted(app, no_such_object(id)));
    };
    let worker = app.clone();
    let queued = blocking(move || worker.wagate.queued(message_id).map_err(store_error)).await?;
    let number = queued.map(|record| record.submission.request.number);
    let may = |number: PhoneNumberId| match &caller {
        Caller::Admin => true,
        Caller::Tenant(tenant) => tenant.owns(number),
    };
    match number {
        Some(number) if may(number) => Ok((message_id, number)),
        Some(_) => Err(counted(app, no_such_object(id))),
        None => Err(not_queued(id).into()),
    }
}

fn not_queued(id: &str) -> ApiError {
    ApiError::new(
        400,
        100,
        "Invalid parameter",
        format!("message {id} is not queued: released already, cancelled, or unknown"),
        "not_queued",
    )
}

pub(crate) async fn cancel(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    let (message_id, _) = owned_queued(&app, &headers, &id).await?;
    let worker = app.clone();
    let cancelled =
        blocking(move || worker.wagate.cancel_queued(message_id).map_err(store_error)).await?;
    match cancelled {
        Some(_) => Ok(reply::ok(
            &json!({ "success": true, "id": id, "status": "cancelled" }),
        )),
        None => Err(not_queued(&id).into()),
    }
}

/// A new time for a queued send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Moved<'a> {
    #[serde(borrow)]
    send_at: Field<'a>,
    #[serde(default, borrow)]
    expire_at: Option<Field<'a>>,
    #[serde(default, borrow)]
    valid_for: Option<Field<'a>>,
}

pub(crate) async fn reschedule(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    let (message_id, _) = owned_queued(&app, &headers, &id).await?;
    require_content_type(&headers, "application/json")?;
    let bytes = read_request_body(&app, body, app.config.http.max_body_bytes).await?;
    let moved: Moved = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid_parameter(format!("the body does not fit this endpoint: {e}"))
    })?;
    let new_expiry = moved.expire_at.is_some() || moved.valid_for.is_some();
    let asked = AskedOptions {
        send_at: Field::text(Some(moved.send_at)),
        expire_at: Field::text(moved.expire_at),
        valid_for: Field::text(moved.valid_for),
        ..AskedOptions::default()
    };
    let now = app.wagate.now();
    let options = send_options(&app, &asked, now)?;
    let at = options.send_at.unwrap_or(now);
    let worker = app.clone();
    let moved = blocking(move || {
        worker
            .wagate
            .reschedule_queued(message_id, at, new_expiry.then_some(options.expire_at))
            .map_err(store_error)
    })
    .await?;
    match moved {
        Some(record) => Ok(reply::ok(&QueuedView::of(&record))),
        None => Err(not_queued(&id).into()),
    }
}
