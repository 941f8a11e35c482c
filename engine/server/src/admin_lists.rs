//! The admin API's lists, what the console reads: every number with its usage
//! (`GET /wagate/admin/numbers`), every template with its status and quality
//! (`GET /wagate/admin/templates`), and the lint of a template not submitted
//! (`POST /wagate/admin/templates/lint`: what Meta would reject, found before it is asked).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::admin_access::{admin_error, admin_only};
use super::reply::{self, ApiErrorResponse};
use super::state::{blocking, App};
use super::usage_view::usage_view;
use wagate_rules::clock::Timestamp;
use wagate_rules::template::lint::{lint, LintFinding};
use wagate_rules::template::model::TemplateDefinition;

/// Numbers one list answers at most (the registry's first, by id).
const MAX_NUMBERS: usize = 1_000;

/// A lint finding as the admin API shows it.
#[derive(serde::Serialize)]
pub(crate) struct FindingView<'a> {
    rule: &'static str,
    /// Meta's code for the rejection this would bring.
    code: u32,
    message: &'a str,
}

pub(crate) fn findings_view(findings: &[LintFinding]) -> Vec<FindingView<'_>> {
    findings
        .iter()
        .map(|f| FindingView {
            rule: f.rule.name(),
            code: f.code,
            message: &f.message,
        })
        .collect()
}

/// `GET /wagate/admin/numbers`: each number's usage, from memory (no disk read).
pub(crate) async fn numbers(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let views = blocking(move || numbers_usage(&app)).await?;
    Ok(reply::ok(&json!({ "data": views })))
}

/// Every number's usage (the first [`MAX_NUMBERS`] by id), as the admin API shows one. It
/// waits for the shards: off the async threads.
pub(crate) fn numbers_usage(app: &App) -> Result<Vec<serde_json::Value>, ApiErrorResponse> {
    let registry = app.wagate.registry();
    let mut numbers: Vec<_> = registry
        .numbers()
        .iter()
        .map(|n| (n.id, n.portfolio, n.throughput.messages_per_second()))
        .collect();
    numbers.sort();
    numbers.truncate(MAX_NUMBERS);
    // Where the limit lives: the number (whatsapp-2021), or its portfolio, shared by its
    // numbers (whatsapp-2025).
    let scope = match registry.profile().limit_scope {
        wagate_rules::profile::LimitScopeKind::Number => "number",
        wagate_rules::profile::LimitScopeKind::Portfolio => "portfolio",
    };
    let mut views = Vec::with_capacity(numbers.len());
    for (number, portfolio, throughput) in numbers {
        let usage = app.wagate.limit_usage(number).map_err(admin_error)?;
        let mut view = serde_json::to_value(usage_view(number.0, &usage)).unwrap_or_default();
        view["limit_scope"] = json!(scope);
        view["portfolio_id"] = json!(portfolio.0.to_string());
        view["throughput_mps"] = json!(throughput);
        views.push(view);
    }
    Ok(views)
}

/// `GET /wagate/admin/numbers/{id}/capacity`: how many of the number's counted recipients
/// leave the rolling 24 h in each of the next 24 hours (when its capacity frees), from now.
pub(crate) async fn capacity(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let number = super::admin_access::parse_number(&id)?;
    let now = app.wagate.now().unix_secs();
    let hours = blocking(move || app.wagate.capacity_schedule(number).map_err(admin_error)).await?;
    Ok(reply::ok(
        &json!({ "id": id, "from": now, "frees_by_hour": hours }),
    ))
}

/// `GET /wagate/admin/templates`: every template wagate knows, by account, name and language.
pub(crate) async fn templates(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let registry = app.wagate.registry();
    let now = app.wagate.now().secs();
    let rules = &registry.profile().templates;
    let mut data: Vec<_> = registry
        .templates()
        .iter()
        .map(|t| {
            let d = &t.definition;
            let life = t.snapshot();
            // Engine seconds to Unix seconds; 0 (never) to nothing.
            let unix = |secs: u32| (secs > 0).then(|| Timestamp::from_secs(secs).unix_secs());
            let disabled_at = (life.flagged_since > 0 && rules.flag_recovery_secs > 0)
                .then(|| life.flagged_since + rules.flag_recovery_secs);
            json!({ "account": d.account.0, "name": d.name, "language": d.language,
                    "category": t.category().name(), "status": t.status(rules, now).name(),
                    "quality": t.quality().meta_name(), "pauses": life.pauses,
                    "paused_until": unix(life.paused_until).filter(|_| life.paused_until > now),
                    "flagged_since": unix(life.flagged_since),
                    "disabled_unless_recovered_at": disabled_at.and_then(unix),
                    "history": life.history.iter().map(|c| json!({ "at": unix(c.at),
                        "status": c.status.name(), "quality": c.quality.meta_name() }))
                        .collect::<Vec<_>>() })
        })
        .collect();
    data.sort_by_key(|t| {
        (
            t["account"].as_u64(),
            t["name"].as_str().map(str::to_string),
            t["language"].as_str().map(str::to_string),
        )
    });
    Ok(reply::ok(&json!({ "data": data })))
}

/// `POST /wagate/admin/templates/lint`: the findings for a template definition, nothing kept.
pub(crate) async fn lint_template(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    admin_only(&app, &headers)?;
    let definition: TemplateDefinition =
        super::body_read::read_json_body(&app, &headers, body).await?;
    let findings = lint(&definition);
    Ok(reply::ok(&json!({ "lint": findings_view(&findings) })))
}
