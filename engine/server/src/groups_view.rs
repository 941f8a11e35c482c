//! wagate's mirror of a tenant's groups, through its own token: `GET /wagate/v1/groups?
//! phone_number_id=..` lists a number's groups, `GET /wagate/v1/groups/{group_id}` shows one
//! (subject, description, approval mode, invite link, participants, open join requests, Meta's
//! status, when a participant last wrote and whether the group's service window is open), as
//! Meta's webhooks and answers last said.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin_access::query_refused;
use super::reply::{self, no_such_object, ApiErrorResponse};
use super::send::{counted, usable_number};
use super::state::App;
use wagate_durable::groups::Group;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    phone_number_id: String,
}

fn view(app: &App, group: &Group) -> Value {
    let window = u64::from(app.wagate.registry().profile().groups.service_window_secs);
    let now = app.wagate.now().unix_secs();
    let requests: Vec<Value> = group
        .join_requests
        .iter()
        .map(|(id, person)| json!({ "join_request_id": id, "wa_id": person }))
        .collect();
    json!({
        "id": group.id,
        "phone_number_id": group.number.to_string(),
        "subject": group.subject,
        "description": group.description,
        "join_approval_mode": group.join_approval_mode,
        "invite_link": group.invite_link,
        "participants": group.participants,
        "total_participant_count": group.participants.len(),
        "join_requests": requests,
        "status": group.status,
        "last_inbound_at": (group.last_inbound > 0).then_some(group.last_inbound),
        "service_window_open": group.last_inbound > 0 && now < group.last_inbound + window,
    })
}

pub(crate) async fn list(
    State(app): State<App>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    let Query(query) = query.map_err(query_refused)?;
    let number =
        usable_number(&app, &tenant, &query.phone_number_id).map_err(|e| counted(&app, e))?;
    let data: Vec<Value> = app
        .wagate
        .groups()
        .groups_of(number)
        .iter()
        .map(|group| view(&app, group))
        .collect();
    Ok(reply::ok(&json!({ "data": data })))
}

pub(crate) async fn read(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiErrorResponse> {
    super::metrics::bump(&app.metrics.requests);
    let tenant = app.tenants.tenant(&headers).map_err(|e| counted(&app, e))?;
    match app.wagate.groups().group(&id) {
        Some(group) if tenant.owns(group.number()) => Ok(reply::ok(&view(&app, &group))),
        _ => Err(counted(&app, no_such_object(&id))),
    }
}
