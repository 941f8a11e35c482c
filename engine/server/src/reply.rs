//! HTTP answers in Meta's shapes: JSON bodies, errors with a trace id, retry hints.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use wagate_cloud_api::error::ApiError;

static TRACE: AtomicU64 = AtomicU64::new(1);

/// A fresh trace id, so an error a sender reports can be found in wagate's log.
pub(crate) fn trace_id() -> String {
    format!("wg{:012x}", TRACE.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    // Serialising wagate's own views cannot fail (no maps with non-string keys).
    json_text(status, serde_json::to_string(body).unwrap_or_default())
}

/// An answer whose JSON is already written.
pub(crate) fn json_text(status: StatusCode, json: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

pub(crate) fn ok<T: serde::Serialize + ?Sized>(body: &T) -> Response {
    json(StatusCode::OK, body)
}

/// An error in Meta's shape; with `retry_after_secs`, a `Retry-After` header too.
pub(crate) fn error(error: &ApiError, retry_after_secs: Option<u64>) -> Response {
    let status =
        StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, &error.to_json(&trace_id()));
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

impl IntoResponse for ApiErrorResponse {
    fn into_response(self) -> Response {
        error(&self.0, self.1)
    }
}

/// An [`ApiError`] as a handler's error type, with an optional retry hint.
pub(crate) struct ApiErrorResponse(pub ApiError, pub Option<u64>);

impl From<ApiError> for ApiErrorResponse {
    fn from(error: ApiError) -> Self {
        ApiErrorResponse(error, None)
    }
}

/// 401 in Meta's shape (code 190, as for an invalid access token).
pub(crate) fn unauthorized(details: &str) -> ApiError {
    ApiError::new(
        401,
        190,
        "Invalid OAuth access token - Cannot parse access token",
        details,
        "unauthorized",
    )
}

/// A path wagate does not serve and that is no Graph path it could pass through to Meta.
pub(crate) fn unknown_endpoint() -> ApiError {
    ApiError::new(
        404,
        100,
        "Unknown path components",
        "no such endpoint",
        "unknown_endpoint",
    )
}

/// Meta's answer for an object that does not exist or that the token may not use; the same
/// for both, so a tenant cannot learn which numbers other tenants have.
pub(crate) fn no_such_object(id: &str) -> ApiError {
    ApiError::new(
        400,
        100,
        "Invalid parameter",
        format!(
            "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded \
             due to missing permissions, or does not support this operation"
        ),
        "unknown_object",
    )
}

/// 503 with a retry hint: wagate's queues are full.
pub(crate) fn overloaded() -> ApiErrorResponse {
    ApiErrorResponse(
        ApiError::new(
            503,
            131_016,
            "Service unavailable",
            "wagate is at its queue limit; retry after the hinted delay",
            "overloaded",
        ),
        Some(1),
    )
}
