//! Template creation through wagate's base URL (`POST /{version}/{waba_id}/message_templates`,
//! Meta's own request): checked by wagate's lint, sent to Meta with the tenant's Meta token,
//! and what Meta took recorded in wagate's registry as submitted (pending review) before any
//! webhook, so wagate knows the template when Meta's verdict comes. Meta's answer comes back
//! with the lint's findings alongside (`wagate_lint`); a tenant with
//! `block_on_template_lint` has a template the lint faults refused before Meta is asked.
//! Listing and deleting on the same path are passed through (`pass_through`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::body_read::read_request_body;
use super::graph::{relay, GraphCall, MetaAnswer};
use super::ownership::owns_account;
use super::reply::{self, no_such_object, ApiErrorResponse};
use super::send::counted;
use super::state::{blocking, App};
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::request::parse_template_create;
use wagate_rules::ids::AccountId;
use wagate_rules::template::lint::{lint, LintFinding};
use wagate_rules::template::model::TemplateDefinition;

/// The lint's findings as the answer names them.
fn findings_json(findings: &[LintFinding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| json!({ "rule": f.rule.name(), "code": f.code, "message": f.message }))
            .collect(),
    )
}

/// The template id Meta's answer names (`"id"`, a string of digits).
pub(crate) fn meta_id_of(body: &[u8]) -> Option<u64> {
    meta_id_in(&serde_json::from_slice(body).ok()?)
}

/// The template id a template object of Meta's names.
pub(crate) fn meta_id_in(json: &Value) -> Option<u64> {
    match &json["id"] {
        Value::String(id) => id.parse().ok(),
        Value::Number(id) => id.as_u64(),
        _ => None,
    }
}

pub(crate) async fn create(
    State(app): State<App>,
    Path((_version, waba)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let tenant = match app.tenants.tenant(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return counted(&app, error).into_response(),
    };
    let account = match waba.parse::<u64>().map(AccountId) {
        Ok(account) if owns_account(&app, &tenant, account) => account,
        _ => return counted(&app, no_such_object(&waba)).into_response(),
    };
    let body = match read_request_body(&app, body, app.config.http.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return ApiErrorResponse::from(error).into_response(),
    };
    let (bytes, _claim) = body.into_parts();
    let definition = match parse_template_create(account, &bytes) {
        Ok(definition) => definition,
        Err(error) => return counted(&app, error).into_response(),
    };
    let wagate_lint = match lint_gate(&tenant, &definition) {
        Ok(findings) => findings,
        Err(refused) => return *refused,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let answer = match app
        .graph
        .call(
            &app.metrics,
            GraphCall::TemplateCreate,
            &tenant,
            Method::POST,
            path_and_query,
            content_type,
            bytes,
        )
        .await
    {
        Ok(answer) => answer,
        Err(error) => return ApiErrorResponse(error, Some(1)).into_response(),
    };
    tracing::info!(
        target: "wagate::audit",
        tenant = %tenant.name,
        account = account.0,
        template = %definition.name,
        meta_status = answer.status.as_u16(),
        "template creation passed to Meta"
    );
    if !answer.status.is_success() {
        return relay(answer);
    }
    // Meta took it for review: known here as submitted from now on, under Meta's id.
    let mut definition = definition;
    definition.meta_id = meta_id_of(&answer.body);
    let (name, language) = (definition.name.clone(), definition.language.clone());
    let wagate = app.wagate.clone();
    let recorded = blocking(move || {
        wagate
            .submit_template(definition)
            .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string())))
    })
    .await;
    if recorded.is_err() {
        tracing::warn!(
            account = account.0,
            template = %name,
            %language,
            "Meta took a template wagate could not record as submitted"
        );
    }
    with_lint(answer, wagate_lint)
}

/// The lint's findings on a template about to go to Meta, as the answer names them; for a
/// tenant with `block_on_template_lint`, a template the lint faults is refused here instead.
pub(crate) fn lint_gate(
    tenant: &Tenant,
    definition: &TemplateDefinition,
) -> Result<Value, Box<Response>> {
    let findings = lint(definition);
    let wagate_lint = findings_json(&findings);
    if tenant.block_on_template_lint {
        if let Some(first) = findings.first() {
            let error = ApiError::new(
                400,
                first.code,
                "Template would be rejected",
                findings
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                "template_lint",
            );
            let mut answer = error.to_json(&reply::trace_id());
            answer["wagate_lint"] = wagate_lint;
            return Err(Box::new(reply::json(StatusCode::BAD_REQUEST, &answer)));
        }
    }
    Ok(wagate_lint)
}

/// Meta's answer with the lint's findings alongside (`wagate_lint`).
pub(crate) fn with_lint(answer: MetaAnswer, wagate_lint: Value) -> Response {
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(mut meta)) => {
            meta.insert("wagate_lint".into(), wagate_lint);
            reply::json(answer.status, &Value::Object(meta))
        }
        _ => relay(answer),
    }
}
