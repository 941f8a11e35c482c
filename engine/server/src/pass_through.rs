//! Every call under `/{version}/` that wagate does not answer itself goes to Meta as the caller
//! wrote it (method, path, query, body and its type), with the tenant's Meta token instead of
//! the caller's wagate token, and Meta's answer comes back as it came. Only for objects the
//! tenant owns: its numbers, its businesses (the accounts of its numbers), their groups (judged
//! by the group rules first: `groups_api`) and media of its numbers (`media`); any other id is
//! answered as Meta answers an object the token may not use, and Meta is not asked. Each call
//! is audited in the log (target `wagate::audit`): tenant, method, path, Meta's status.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};

use super::body_read::read_request_body;
use super::graph::{graph_object, relay};
use super::ownership::{owns, tenant_template};
use super::registrations::registration_of;
use super::reply::{no_such_object, unknown_endpoint, ApiErrorResponse};
use super::send::counted;
use super::state::App;
use super::{block_reads, groups_api, media, number_reads, template_by_id, template_reads};
use wagate_cloud_api::error::ApiError;
use wagate_rules::ids::PhoneNumberId;

/// The router's fallback: a Graph path goes to Meta for its owner; anything else is unknown.
pub(crate) async fn pass_through(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(id) = graph_object(uri.path()) else {
        return ApiErrorResponse::from(unknown_endpoint()).into_response();
    };
    if !matches!(method, Method::GET | Method::POST | Method::DELETE) {
        return ApiErrorResponse::from(ApiError::new(
            405,
            100,
            "Unsupported method",
            format!("Meta's Graph API takes GET, POST and DELETE, not {method}"),
            "unsupported_method",
        ))
        .into_response();
    }
    let tenant = match app.tenants.tenant(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return counted(&app, error).into_response(),
    };
    if let Ok(number) = id.parse::<u64>() {
        if tenant.owns(PhoneNumberId(number)) {
            tracing::Span::current().record("number", number);
        }
    }
    let bare = uri.path().matches('/').count() == 2;
    if !owns(&app, &tenant, id) && !groups_api::owns_group(&app, &tenant, id) {
        // A bare `/{version}/{id}` may be a template of the tenant's by Meta's id (no number or
        // business id is one, so the tenant's own are passed through without looking).
        if bare {
            if let Some(template) = tenant_template(&app, &tenant, id) {
                return template_by_id::by_id(
                    &app, &tenant, method, &uri, &headers, body, template,
                )
                .await;
            }
        }
        // A bare `/{version}/{id}` read or deleted may be a media id (the tenant's if Meta says so).
        if bare && matches!(method, Method::GET | Method::DELETE) {
            return media::by_id(&app, &tenant, method, &uri, &headers, id).await;
        }
        return counted(&app, no_such_object(id)).into_response();
    }
    let registration = registration_of(uri.path()).filter(|_| method == Method::POST);
    if let Some(number) = registration {
        if let Err(refused) = app.registrations.take(number, app.wagate.now().unix_secs()) {
            return counted(&app, refused).into_response();
        }
    }
    let body = match read_request_body(&app, body, app.config.http.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return ApiErrorResponse::from(error).into_response(),
    };
    let (bytes, _claim) = body.into_parts();
    // A group call is judged by the group rules before Meta hears of it.
    let group_call = match groups_api::check(&app, &method, uri.path(), &bytes) {
        Ok(followup) => followup,
        Err(refused) => return counted(&app, refused).into_response(),
    };
    let answered = app
        .graph
        .as_asked(&app.metrics, &tenant, method.clone(), &uri, &headers, bytes)
        .await;
    let status = answered.as_ref().map_or(0, |answer| answer.status.as_u16());
    tracing::info!(
        target: "wagate::audit",
        tenant = %tenant.name,
        %method,
        path = uri.path(),
        meta_status = status,
        "passed through to Meta"
    );
    if let (Some(number), Ok(answer)) = (registration, &answered) {
        let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|json| json["error"]["code"].as_u64());
        if code == Some(133_016) {
            // Meta's word: its window for the number is full.
            app.registrations.full(number, app.wagate.now().unix_secs());
        }
    }
    match answered {
        Ok(answer) => {
            if answer.status.is_success() {
                if method == Method::GET {
                    number_reads::apply(&app, &tenant, uri.path(), &answer.body).await;
                }
                template_reads::apply(&app, &method, uri.path(), uri.query(), &answer.body).await;
                block_reads::apply(&app, &tenant, &method, uri.path(), &answer.body).await;
                if let Some(followup) = group_call {
                    groups_api::settle(&app, followup, &answer.body);
                }
            }
            relay(answer)
        }
        Err(error) => ApiErrorResponse(error, Some(1)).into_response(),
    }
}
