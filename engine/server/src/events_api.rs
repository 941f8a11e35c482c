//! `POST /wagate/v1/events`: a business's own event (`{"event": "appointment_booked",
//! "phone_number_id", "to", "at", "parameters"?, "id"?}`) sets going what its tenant's
//! automations (`[[tenants.automations]]`) say for it: a template to the person,
//! `remind_before_secs` before `at`, queued until then and never sent after `at` (a reminder
//! of something past is worse than none). The same event `id` twice schedules once (it keys
//! the sends). Each send is decided by the rules of its second, as any scheduled send.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body_read::read_json_body;
use super::reply::{self, ApiErrorResponse};
use super::send::{counted, decide_many, rejected, usable_number, Asked};
use super::send_options::parse_instant;
use super::state::App;
use super::template_body::template_body;
use wagate_cloud_api::error::ApiError;
use wagate_rules::clock::Timestamp;
use wagate_rules::SendOptions;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event: String,
    phone_number_id: String,
    to: String,
    /// When what the event is about happens: Unix seconds or RFC 3339.
    at: Value,
    #[serde(default)]
    parameters: Vec<String>,
    /// The business's own id of the event: the same id again schedules nothing more.
    #[serde(default)]
    id: Option<String>,
}

pub(crate) async fn receive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    let asked: EventBody = read_json_body(&app, &headers, body).await?;
    let number =
        usable_number(&app, &tenant, &asked.phone_number_id).map_err(|e| counted(&app, e))?;
    let at = match &asked.at {
        Value::Number(n) => n.as_u64().map(|secs| secs.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid_parameter("at is Unix seconds or RFC 3339"))
    .and_then(|text| {
        parse_instant(&text).map_err(|e| ApiError::invalid_parameter(format!("at: {e}")))
    })?;
    let automations: Vec<_> = app
        .config
        .tenants
        .iter()
        .find(|t| t.name == tenant.name)
        .map(|t| {
            t.automations
                .iter()
                .filter(|a| a.event.as_deref() == Some(asked.event.as_str()))
                .filter_map(|a| Some((a, a.template.as_deref()?)))
                .collect()
        })
        .unwrap_or_default();
    if automations.is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "no automation of this tenant answers the event '{}'",
            asked.event
        ))
        .into());
    }
    let now = app.wagate.now();
    let sends: Vec<Result<Asked, ApiError>> = automations
        .iter()
        .enumerate()
        .map(|(index, (automation, template))| {
            let send_at = at.unix_secs().saturating_sub(automation.remind_before_secs);
            let body = template_body(&asked.to, template, &automation.language, &asked.parameters);
            Ok(Asked {
                number,
                body,
                key: asked
                    .id
                    .as_ref()
                    .map(|id| format!("wagate-event-{}-{index}-{id}", asked.event)),
                queue: true,
                options: SendOptions {
                    send_at: (send_at > now.unix_secs())
                        .then(|| Timestamp::from_unix_secs(send_at)),
                    expire_at: Some(at),
                    ..SendOptions::default()
                },
            })
        })
        .collect();
    let outcomes = decide_many(&app, sends)
        .await
        .map_err(|why| rejected(&app, why))?;
    let answers: Vec<Value> = outcomes
        .iter()
        .zip(&automations)
        .map(|(outcome, (automation, template))| {
            json!({
                "template": template,
                "send_at": at.unix_secs().saturating_sub(automation.remind_before_secs),
                "status": outcome.status,
                "body": serde_json::from_str::<Value>(&outcome.body.to_json())
                    .unwrap_or(Value::Null),
            })
        })
        .collect();
    tracing::info!(
        tenant = %tenant.name,
        event = %asked.event,
        sends = answers.len(),
        "a business event set its automations going"
    );
    Ok(reply::ok(
        &json!({ "event": asked.event, "sends": answers }),
    ))
}
