//! Who may call the admin API and how its refusals read: the admin token, the registry's and the
//! store's errors in Meta's shape, and a phone number id as a path gives it.

use axum::http::HeaderMap;

use super::metrics::bump;
use super::reply::ApiErrorResponse;
use super::state::{store_error, App};
use wagate_cloud_api::error::ApiError;
use wagate_durable::admin::AdminError;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::registry::RegistryError;

pub(crate) fn admin_only(app: &App, headers: &HeaderMap) -> Result<(), ApiErrorResponse> {
    bump(&app.metrics.requests);
    app.tenants.admin(headers).map_err(|e| {
        bump(&app.metrics.unauthorized);
        e.into()
    })
}

pub(crate) fn admin_error(error: AdminError) -> ApiErrorResponse {
    match error {
        AdminError::Registry(RegistryError::UnknownNumber(id)) => {
            super::reply::no_such_object(&id.0.to_string()).into()
        }
        AdminError::Registry(other) => ApiError::new(
            400,
            100,
            "Invalid parameter",
            other.to_string(),
            "registry_refused",
        )
        .into(),
        AdminError::Store(store) => store_error(store),
    }
}

pub(crate) fn parse_number(text: &str) -> Result<PhoneNumberId, ApiErrorResponse> {
    text.parse()
        .map(PhoneNumberId)
        .map_err(|_| super::reply::no_such_object(text).into())
}

/// A query that does not parse, in Meta's error shape like every other refusal.
pub(crate) fn query_refused(
    rejection: axum::extract::rejection::QueryRejection,
) -> ApiErrorResponse {
    ApiError::invalid_parameter(rejection.body_text()).into()
}
