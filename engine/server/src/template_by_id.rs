//! Calls on a template by Meta's id (`/{version}/{template_id}`), for templates of the
//! tenant's businesses whose id wagate learned (Meta's answer to their creation, its lists).
//! A read is passed through and the status in Meta's answer applied; a deletion Meta took
//! deletes the template here; an **edit** (`POST`, Meta's request: new components, a category
//! for a template not yet approved) is checked first (Meta takes edits of approved, rejected
//! and paused templates only, and never a new category for an approved one), linted like a
//! creation (`wagate_lint`, blocking per tenant), sent to Meta, and what Meta took is recorded
//! at once: the new definition, back in review, unsendable until Meta approves it again.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::body_read::read_request_body;
use super::graph::{relay, MetaAnswer};
use super::recent_calls::Limit;
use super::reply::ApiErrorResponse;
use super::send::counted;
use super::state::{blocking, App};
use super::template_reads::apply_status;
use super::templates_api::{lint_gate, with_lint};
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::request::parse_template_create;
use wagate_cloud_api::webhooks::events::template_status;
use wagate_rules::registered_template::Template;
use wagate_rules::template::status::TemplateStatus;

/// The tag approved templates' edits are kept under (registration calls have theirs).
pub(crate) const EDITS_TAG: u8 = 2;

/// Meta's limits on editing an approved template.
const APPROVED_EDITS: [Limit; 2] = [
    Limit {
        calls: 1,
        window_secs: 86_400,
    },
    Limit {
        calls: 10,
        window_secs: 30 * 86_400,
    },
];

pub(crate) async fn by_id(
    app: &App,
    tenant: &Tenant,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    template: Arc<Template>,
) -> Response {
    let definition = &template.definition;
    let (account, name, language) = (
        definition.account,
        definition.name.clone(),
        definition.language.clone(),
    );
    let (bytes, wagate_lint, edited) = if method == Method::POST {
        match checked_edit(app, tenant, &template, body).await {
            Ok(edit) => edit,
            Err(refused) => return refused,
        }
    } else {
        (Bytes::new(), Value::Null, None)
    };
    let answered = app
        .graph
        .as_asked(&app.metrics, tenant, method.clone(), uri, headers, bytes)
        .await;
    tracing::info!(
        target: "wagate::audit",
        tenant = %tenant.name,
        %method,
        path = uri.path(),
        template = %name,
        meta_status = answered.as_ref().map_or(0, |a| a.status.as_u16()),
        "template call passed through to Meta"
    );
    let answer: MetaAnswer = match answered {
        Ok(answer) => answer,
        Err(error) => return ApiErrorResponse(error, Some(1)).into_response(),
    };
    if !answer.status.is_success() {
        return relay(answer);
    }
    match method {
        Method::GET => {
            let status = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|json| json["status"].as_str().and_then(template_status));
            if let Some(status) = status {
                apply_status(app, account, name, language, status).await;
            }
            relay(answer)
        }
        Method::DELETE => {
            apply_status(app, account, name, language, TemplateStatus::Deleted).await;
            relay(answer)
        }
        _ => {
            if let Some((definition, was_approved)) = edited {
                if was_approved {
                    let meta_id = definition.meta_id.unwrap_or_default();
                    app.template_edits
                        .record(meta_id, app.wagate.now().unix_secs());
                }
                let wagate = app.wagate.clone();
                let recorded = blocking(move || {
                    wagate.submit_template(definition).map_err(|e| {
                        ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string()))
                    })
                })
                .await;
                if recorded.is_err() {
                    tracing::warn!(
                        account = account.0,
                        template = %name,
                        "Meta took an edit wagate could not record"
                    );
                }
            }
            with_lint(answer, wagate_lint)
        }
    }
}

/// An edit as Meta's rules allow it, linted: the body for Meta, the findings, and the new
/// definition to record once Meta takes it; or the refusal.
async fn checked_edit(
    app: &App,
    tenant: &Tenant,
    template: &Template,
    body: Body,
) -> Result<
    (
        Bytes,
        Value,
        Option<(wagate_rules::template::model::TemplateDefinition, bool)>,
    ),
    Response,
> {
    let registry = app.wagate.registry();
    let status = template.status(&registry.profile().templates, app.wagate.now().secs());
    if !matches!(
        status,
        TemplateStatus::Approved | TemplateStatus::Rejected | TemplateStatus::Paused
    ) {
        return Err(counted(
            app,
            not_editable(format!(
                "the template is {}; Meta takes edits of approved, rejected and paused templates",
                status.name()
            )),
        )
        .into_response());
    }
    let body = read_request_body(app, body, app.config.http.max_body_bytes)
        .await
        .map_err(|error| ApiErrorResponse::from(error).into_response())?;
    let (bytes, _claim) = body.into_parts();
    let mut edit: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| {
            counted(
                app,
                ApiError::invalid_parameter("an edit is a JSON object (components, category)"),
            )
            .into_response()
        })?;
    let current = template.category();
    if let Some(category) = edit.get("category").and_then(Value::as_str) {
        if status == TemplateStatus::Approved && !category.eq_ignore_ascii_case(current.name()) {
            return Err(counted(
                app,
                not_editable(format!(
                    "an approved template's category cannot be changed ({} to {category})",
                    current.name()
                )),
            )
            .into_response());
        }
    }
    // Meta takes one edit of an approved template a day and ten in 30 days.
    let meta_id = template.definition.meta_id.unwrap_or_default();
    let now = app.wagate.now().unix_secs();
    if status == TemplateStatus::Approved {
        if let Err(free_at) = app.template_edits.check(meta_id, now, &APPROVED_EDITS) {
            return Err(counted(
                app,
                ApiError::new(
                    400,
                    100,
                    "Invalid parameter",
                    format!(
                        "an approved template is edited at most once a day and 10 times in 30 \
                         days; the next edit may go at {free_at} (Unix seconds)"
                    ),
                    "template_edit_limit",
                ),
            )
            .into_response());
        }
    }
    // The edit names what changes; the rest of the template is as it was.
    let definition = &template.definition;
    edit.entry("name")
        .or_insert_with(|| Value::from(definition.name.as_str()));
    edit.entry("language")
        .or_insert_with(|| Value::from(definition.language.as_str()));
    edit.entry("category")
        .or_insert_with(|| Value::from(current.name().to_uppercase()));
    let merged = serde_json::to_vec(&Value::Object(edit)).unwrap_or_default();
    let mut edited = parse_template_create(definition.account, &merged)
        .map_err(|error| counted(app, error).into_response())?;
    edited.meta_id = definition.meta_id;
    let wagate_lint = lint_gate(tenant, &edited).map_err(|refused| *refused)?;
    Ok((
        bytes,
        wagate_lint,
        Some((edited, status == TemplateStatus::Approved)),
    ))
}

fn not_editable(details: String) -> ApiError {
    ApiError::new(
        400,
        100,
        "Invalid parameter",
        details,
        "template_not_editable",
    )
}
