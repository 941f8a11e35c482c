//! `POST /wagate/v1/campaigns/plan`: before a broadcast, the plan under the number's limits as
//! they stand (its tier, the rolling 24 h already used, the 7-day count, its quality): how many
//! go on each day and when the campaign earns the next tier (`wagate_rules::campaign_plan`).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::admin_access::admin_error;
use super::body_read::read_request_body;
use super::reply::{self, ApiErrorResponse};
use super::send::{counted, usable_number};
use super::state::{blocking, require_content_type, App};
use wagate_cloud_api::error::ApiError;
use wagate_rules::campaign_plan::{plan, PlanStart};
use wagate_rules::clock::SECS_PER_DAY;

/// The largest audience a plan is made for.
const MAX_AUDIENCE: u64 = 100_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanAsked {
    phone_number_id: String,
    /// People to reach.
    audience: u64,
    #[serde(default)]
    daily_cap: Option<u64>,
}

pub(crate) async fn plan_campaign(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    require_content_type(&headers, "application/json")?;
    let bytes = read_request_body(&app, body, app.config.http.max_body_bytes).await?;
    let asked: PlanAsked = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid_parameter(format!("the body does not fit this endpoint: {e}"))
    })?;
    let number =
        usable_number(&app, &tenant, &asked.phone_number_id).map_err(|e| counted(&app, e))?;
    if asked.audience == 0 || asked.audience > MAX_AUDIENCE {
        return Err(ApiError::invalid_parameter(format!("audience is 1 to {MAX_AUDIENCE}")).into());
    }
    if asked.daily_cap == Some(0) {
        return Err(ApiError::invalid_parameter("daily_cap is at least 1").into());
    }
    let worker = app.clone();
    let usage = blocking(move || worker.wagate.usage(number).map_err(admin_error)).await?;
    let profile = app.wagate.registry().profile();
    let tier = profile
        .tiers
        .iter()
        .position(|t| t.name == usage.tier)
        .unwrap_or(0);
    let planned = plan(
        profile,
        PlanStart {
            audience: asked.audience,
            tier,
            used_24h: usage.used_24h,
            unique_7d: usage.unique_7d_estimate,
            quality: usage.quality,
            daily_cap: asked.daily_cap,
        },
    );
    // Day 0 starts now; each next one a rolling day later.
    let now = app.wagate.now().unix_secs();
    let days: Vec<_> = planned
        .days
        .iter()
        .map(|day| {
            json!({
                "day": day.day,
                "starts_at": now + u64::from(day.day) * u64::from(SECS_PER_DAY),
                "tier": profile.tiers[day.tier].name,
                "limit": day.limit,
                "sends": day.sends,
            })
        })
        .collect();
    let upgrade = planned.upgrade_day(tier).map(
        |day| json!({ "day": day, "to": profile.tiers[planned.days[day as usize].tier].name }),
    );
    Ok(reply::ok(&json!({
        "phone_number_id": number.0.to_string(),
        "tier": usage.tier,
        "used_24h": usage.used_24h,
        "days": days,
        "unplaced": planned.unplaced,
        "upgrade": upgrade,
    })))
}
