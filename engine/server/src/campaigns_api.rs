//! Campaigns through a tenant's own token.
//!
//! - `POST /wagate/v1/campaigns?phone_number_id=..&template=..[&language=..][&name=..]
//!   [&start_at=..][&daily_cap=..][&auto_resume=true]` with the audience as the body, streamed:
//!   NDJSON (`{"to": "+1650...", "parameters": ["Ada"]}` per line) or CSV (`to,param1,...`,
//!   an optional header line starting with `to`). Answers `201` with the campaign planned:
//!   who was left out and why, the estimated cost, and the plan by day. Nothing is sent yet.
//! - `POST /wagate/v1/campaigns/{id}/start` (`pause`, `resume`, `cancel`).
//! - `GET /wagate/v1/campaigns/{id}`: its state and live counts; `GET /wagate/v1/campaigns`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin_access::query_refused;
use super::body_read::{BodyFrames, LineParts};
use super::config::QuietHoursConfig;
use super::reply::{self, no_such_object, ApiErrorResponse};
use super::send::{counted, usable_number};
use super::send_options::parse_instant;
use super::state::{blocking, store_error, App};
use super::template_body::template_body;
use super::tenants::{Caller, Tenant};
use wagate_cloud_api::error::ApiError;
use wagate_durable::campaigns::{AudienceLine, Campaign, CampaignSpec};
use wagate_durable::{CampaignError, Wagate};
use wagate_rules::ids::Msisdn;

/// Bytes of whole audience lines screened and kept together.
const AUDIENCE_PART_BYTES: usize = 1 << 20;
/// The largest audience upload: streamed, so only a part is ever held (millions of people).
const MAX_AUDIENCE_BYTES: usize = 4 << 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateQuery {
    phone_number_id: String,
    template: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// Unix seconds or RFC 3339; now when absent.
    #[serde(default)]
    start_at: Option<String>,
    #[serde(default)]
    daily_cap: Option<u64>,
    #[serde(default)]
    auto_resume: Option<bool>,
    /// The campaign's own quiet hours (`HH:MM`, both or neither), in each person's local time.
    #[serde(default)]
    allowed_from: Option<String>,
    #[serde(default)]
    allowed_to: Option<String>,
}

/// Meta's error shape for what a campaign call cannot do.
fn campaign_error(error: CampaignError) -> ApiErrorResponse {
    match error {
        CampaignError::Unknown(id) => no_such_object(&id.to_string()).into(),
        CampaignError::AudienceTooLarge(_) => ApiError::invalid_parameter(error.to_string()).into(),
        CampaignError::WrongState { .. } => ApiError::new(
            409,
            100,
            "Invalid parameter",
            error.to_string(),
            "campaign_state",
        )
        .into(),
        CampaignError::UnknownTemplate { .. } => ApiError::new(
            404,
            132_001,
            "Template name does not exist in the translation",
            error.to_string(),
            "template_not_found",
        )
        .into(),
        CampaignError::Store(error) => store_error(error),
        CampaignError::Admin(error) => super::admin_access::admin_error(error),
        CampaignError::Submit(error) => ApiError::from(&error).into(),
    }
}

pub(crate) async fn create(
    State(app): State<App>,
    query: Result<Query<CreateQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    let Query(query) = query.map_err(query_refused)?;
    let number =
        usable_number(&app, &tenant, &query.phone_number_id).map_err(|e| counted(&app, e))?;
    let csv = match headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
    {
        Some("application/x-ndjson") => false,
        Some("text/csv") => true,
        _ => {
            return Err(ApiError::invalid_parameter(
                "the audience is application/x-ndjson or text/csv",
            )
            .into())
        }
    };
    if query.daily_cap == Some(0) {
        return Err(ApiError::invalid_parameter("daily_cap is at least 1").into());
    }
    let now = app.wagate.now().unix_secs();
    let start_at = match query.start_at.as_deref() {
        Some(text) => parse_instant(text)
            .map_err(|e| ApiError::invalid_parameter(format!("start_at: {e}")))?
            .unix_secs(),
        None => now,
    };
    let quiet_hours = match (query.allowed_from, query.allowed_to) {
        (None, None) => None,
        (Some(allowed_from), Some(allowed_to)) => {
            let rule = QuietHoursConfig {
                allowed_from,
                allowed_to,
                categories: Vec::new(),
            }
            .rule()
            .map_err(|why| ApiError::invalid_parameter(format!("quiet hours: {why}")))?;
            Some([rule.allowed_from_minute, rule.allowed_to_minute])
        }
        _ => {
            return Err(ApiError::invalid_parameter("give both allowed_from and allowed_to").into())
        }
    };
    let language = query.language.unwrap_or_else(|| "en_US".into());
    let spec = CampaignSpec {
        tenant: tenant.name.clone(),
        name: query.name.unwrap_or_default(),
        number: number.0,
        template: query.template,
        language,
        start_at,
        daily_cap: query.daily_cap,
        auto_resume: query.auto_resume.unwrap_or(false),
        quiet_hours,
    };
    let worker = app.clone();
    let campaign =
        blocking(move || worker.wagate.create_campaign(spec).map_err(campaign_error)).await?;
    let id = campaign.id;
    match upload(&app, &campaign, csv, body).await {
        Ok(()) => {}
        Err(error) => {
            let worker = app.clone();
            let _ =
                blocking(move || worker.wagate.abandon_upload(id).map_err(campaign_error)).await;
            tracing::warn!(
                campaign = id,
                "a campaign's upload failed: the campaign is cancelled"
            );
            return Err(error);
        }
    }
    let worker = app.clone();
    let planned = blocking(move || worker.wagate.finish_upload(id).map_err(campaign_error)).await?;
    tracing::info!(
        campaign = id,
        tenant = %tenant.name,
        audience = planned.audience,
        received = planned.received,
        "campaign uploaded and planned"
    );
    let view = view(&app, &planned).await?;
    Ok(reply::json(StatusCode::CREATED, &view))
}

/// Streams the audience into the campaign, a part of whole lines at a time.
async fn upload(
    app: &App,
    campaign: &Campaign,
    csv: bool,
    body: Body,
) -> Result<(), ApiErrorResponse> {
    let mut frames = BodyFrames::new(
        body,
        MAX_AUDIENCE_BYTES,
        app.config.http.body_read_timeout(),
        &app.metrics,
    );
    frames.refuse_if_announced_past_limit().await?;
    let mut parts = LineParts::new(frames, AUDIENCE_PART_BYTES);
    let mut claim = app.bodies.claim();
    let (id, template, language) = (
        campaign.id,
        campaign.spec.template.clone(),
        campaign.spec.language.clone(),
    );
    let mut first = true;
    while let Some(part) = parts.next(&mut claim).await? {
        let taken = part.len();
        let lines = audience_lines(&part, csv, first, &template, &language);
        first = false;
        let worker = app.clone();
        blocking(move || {
            worker
                .wagate
                .add_audience(id, lines)
                .map_err(campaign_error)
        })
        .await?;
        claim.release(taken);
    }
    Ok(())
}

/// One part's lines as people and their sends (a CSV's header, when `first`, skipped).
fn audience_lines(
    part: &[u8],
    csv: bool,
    first: bool,
    template: &str,
    language: &str,
) -> Vec<AudienceLine> {
    let text = String::from_utf8_lossy(part);
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let read = if csv {
            if first && index == 0 && line.to_ascii_lowercase().starts_with("to") {
                continue;
            }
            let mut fields = line
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_string());
            let to = fields.next().unwrap_or_default();
            Some((to, fields.collect::<Vec<_>>()))
        } else {
            serde_json::from_str::<Value>(line).ok().and_then(|v| {
                let to = v["to"].as_str()?.to_string();
                let parameters = match &v["parameters"] {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items
                        .iter()
                        .map(|p| p.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()?,
                    _ => return None,
                };
                Some((to, parameters))
            })
        };
        lines.push(match read {
            Some((to, parameters)) => match Msisdn::parse(&to) {
                Ok(person) => AudienceLine::Person {
                    to: person,
                    payload: template_body(&to, template, language, &parameters),
                },
                Err(_) => AudienceLine::Invalid,
            },
            None => AudienceLine::Invalid,
        });
    }
    lines
}

/// The campaign `id` if the caller's tenant owns it.
fn owned(app: &App, tenant: &Tenant, id: &str) -> Result<Campaign, ApiErrorResponse> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| app.wagate.campaign(id))
        .filter(|c| c.spec.tenant == tenant.name)
        .ok_or_else(|| no_such_object(id).into())
}

pub(crate) async fn read(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    let campaign = owned(&app, &tenant, &id)?;
    Ok(reply::ok(&view(&app, &campaign).await?))
}

pub(crate) async fn list(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    // A tenant its own; the admin (and the console) every tenant's.
    let caller = app.tenants.caller(&headers).map_err(|e| counted(&app, e))?;
    let mut data = Vec::new();
    for campaign in app.wagate.campaigns() {
        let visible = match &caller {
            Caller::Admin => true,
            Caller::Tenant(tenant) => campaign.spec.tenant == tenant.name,
        };
        if visible {
            data.push(view(&app, &campaign).await?);
        }
    }
    Ok(reply::ok(&json!({ "data": data })))
}

pub(crate) async fn act(
    State(app): State<App>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    let campaign = owned(&app, &tenant, &id)?;
    let id = campaign.id;
    type Change = fn(&Wagate, u64) -> Result<Campaign, CampaignError>;
    let change: Change = match action.as_str() {
        "start" => Wagate::start_campaign,
        "pause" => Wagate::pause_campaign,
        "resume" => Wagate::resume_campaign,
        "cancel" => Wagate::cancel_campaign,
        _ => {
            return Err(ApiError::invalid_parameter(
                "a campaign is started, paused, resumed or cancelled",
            )
            .into())
        }
    };
    let worker = app.clone();
    let changed = blocking(move || change(&worker.wagate, id).map_err(campaign_error)).await?;
    tracing::info!(campaign = id, action = %action, tenant = %tenant.name, "campaign changed");
    Ok(reply::ok(&view(&app, &changed).await?))
}

/// A campaign as the API shows it, with its delivery counts from Meta's statuses.
async fn view(app: &App, campaign: &Campaign) -> Result<Value, ApiErrorResponse> {
    let worker = app.clone();
    let id = campaign.id;
    let deliveries =
        blocking(move || worker.wagate.campaign_deliveries(id).map_err(store_error)).await?;
    let now = app.wagate.now().unix_secs();
    let first_day = campaign
        .started_at
        .unwrap_or_else(|| campaign.spec.start_at.max(now));
    let plan = &campaign.plan;
    let days: Vec<Value> = plan
        .sends
        .iter()
        .zip(&plan.tiers)
        .enumerate()
        .map(|(day, (sends, tier))| {
            json!({ "day": day, "starts_at": first_day + day as u64 * 86_400,
                    "tier": tier, "sends": sends })
        })
        .collect();
    Ok(json!({
        "id": campaign.id.to_string(),
        "name": campaign.spec.name,
        "phone_number_id": campaign.spec.number.to_string(),
        "template": { "name": campaign.spec.template, "language": campaign.spec.language },
        "state": campaign.state.name(),
        "paused_by": campaign.paused_by.map(|p| p.name()),
        "auto_resume": campaign.spec.auto_resume,
        "daily_cap": campaign.spec.daily_cap,
        "quiet_hours": campaign.spec.quiet_hours.map(|[from, to]| json!({
            "allowed_from": format!("{:02}:{:02}", from / 60, from % 60),
            "allowed_to": format!("{:02}:{:02}", to / 60, to % 60),
        })),
        "created_at": campaign.created_at,
        "start_at": campaign.spec.start_at,
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
        "audience": {
            "received": campaign.received,
            "eligible": campaign.audience,
            "excluded": campaign.excluded,
        },
        "estimated_cost_micros": campaign.estimated_cost_micros,
        "plan": {
            "days": days,
            "upgrade": plan.upgrade_day.map(|day| json!({ "day": day, "to": plan.upgrade_to })),
            "unplaced": plan.unplaced,
        },
        "counts": {
            "planned": campaign.audience,
            "fed": campaign.cursor,
            "left": campaign.left(),
            "accepted": campaign.accepted,
            "queued": campaign.queued,
            "refused": campaign.refused,
            "sent": deliveries.sent,
            "delivered": deliveries.delivered,
            "read": deliveries.read,
            "failed": deliveries.failed,
            "cost_accepted_micros": campaign.accepted_cost_micros,
            "priced": deliveries.priced,
            "cost_reconciled_micros": deliveries.reconciled_micros,
            "days": campaign.days,
        },
    }))
}
