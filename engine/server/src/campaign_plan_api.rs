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
use super::body_read::read_json_body;
use super::reply::{self, ApiErrorResponse};
use super::send::{counted, usable_number};
use super::state::{blocking, App};
use wagate_cloud_api::error::ApiError;
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
    let asked: PlanAsked = read_json_body(&app, &headers, body).await?;
    let number =
        usable_number(&app, &tenant, &asked.phone_number_id).map_err(|e| counted(&app, e))?;
    if asked.audience == 0 || asked.audience > MAX_AUDIENCE {
        return Err(ApiError::invalid_parameter(format!("audience is 1 to {MAX_AUDIENCE}")).into());
    }
    if asked.daily_cap == Some(0) {
        return Err(ApiError::invalid_parameter("daily_cap is at least 1").into());
    }
    let worker = app.clone();
    let (usage, planned) = blocking(move || {
        let usage = worker.wagate.usage(number).map_err(admin_error)?;
        let planned = worker
            .wagate
            .plan_days(number, asked.audience, asked.daily_cap)
            .map_err(|e| ApiErrorResponse::from(ApiError::invalid_parameter(e.to_string())))?;
        Ok((usage, planned))
    })
    .await?;
    // Day 0 starts now; each next one a rolling day later.
    let now = app.wagate.now().unix_secs();
    let days: Vec<_> = (0..planned.sends.len())
        .map(|day| {
            json!({
                "day": day,
                "starts_at": now + day as u64 * u64::from(SECS_PER_DAY),
                "tier": planned.tiers[day],
                "limit": planned.limits[day],
                "sends": planned.sends[day],
            })
        })
        .collect();
    let upgrade = planned
        .upgrade_day
        .map(|day| json!({ "day": day, "to": planned.upgrade_to }));
    Ok(reply::ok(&json!({
        "phone_number_id": number.0.to_string(),
        "tier": usage.tier,
        "used_24h": usage.used_24h,
        "days": days,
        "unplaced": planned.unplaced,
        "upgrade": upgrade,
    })))
}
