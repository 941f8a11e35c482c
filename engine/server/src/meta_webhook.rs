//! Meta's webhooks: the subscription handshake, and signed event POSTs applied once each and
//! forwarded to the tenant that owns the number.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::body_read::read_request_body;
use super::forward::{identity_of, Forward};
use super::metrics::bump;
use super::reply::{self, unauthorized, ApiErrorResponse};
use super::state::{blocking, App};
use wagate_cloud_api::error::ApiError;
use wagate_cloud_api::webhooks::events::{events_of, parse_envelope, MessagesChange, WebhookEvent};
use wagate_cloud_api::webhooks::signature::{handshake as echo, verify};
use wagate_durable::message::message_id_text;

/// `GET /webhooks/meta?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`
pub(crate) async fn handshake(
    State(app): State<App>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let verify_token = &app.config.meta.verify_token;
    let answer = (!verify_token.is_empty())
        .then(|| {
            echo(
                query.get("hub.mode").map(String::as_str),
                query.get("hub.verify_token").map(String::as_str),
                query.get("hub.challenge").map(String::as_str),
                verify_token,
            )
        })
        .flatten();
    match answer {
        Some(challenge) => (StatusCode::OK, challenge.to_string()).into_response(),
        None => (StatusCode::FORBIDDEN, "verification failed").into_response(),
    }
}

/// `POST /webhooks/meta`: verified over the raw body before anything is read from it.
pub(crate) async fn receive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErrorResponse> {
    bump(&app.metrics.requests);
    let body = read_request_body(&app, body, app.config.http.max_body_bytes).await?;
    let secret = app.config.meta.app_secret.as_bytes();
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if secret.is_empty() || verify(secret, &body, signature).is_err() {
        bump(&app.metrics.webhooks_bad_signature);
        return Err(unauthorized("the X-Hub-Signature-256 signature does not match").into());
    }
    let worker = app.clone();
    // The request's span, on the blocking thread too: the engine's logs of these events say
    // they came from Meta's webhook.
    let span = tracing::Span::current();
    let (mut report, number_news) = blocking(move || {
        let _in_request = span.enter();
        // Read once, here off the async threads: the events and the tenants' forwards are both
        // read from it.
        let invalid = |e: ApiError| {
            bump(&worker.metrics.invalid);
            ApiErrorResponse::from(e)
        };
        let envelope = parse_envelope(&body).map_err(invalid)?;
        let read = events_of(&envelope).map_err(invalid)?;
        let events = read.events;
        // Meta may have raised a number's throughput: then the upstream's pacing follows.
        let number_news = events
            .iter()
            .any(|e| matches!(e, WebhookEvent::NumberQuality { .. }));
        let forwards = forwards(&worker, &read.messages_changes).map_err(|e| ApiError::from(&e))?;
        worker
            .forwarder
            .enqueue(forwards)
            .map_err(|e| ApiError::from(&e))?;
        let report = worker
            .wagate
            .apply_webhook(events)
            .map_err(|e| ApiError::from(&e))?;
        Ok((report, number_news))
    })
    .await?;
    if number_news {
        for number in app.wagate.registry().numbers() {
            app.upstream
                .set_throughput_if_changed(number.id.0, number.throughput.messages_per_second());
        }
    }
    super::opt_out_confirmation::confirm(&app, std::mem::take(&mut report.opted_out)).await;
    super::keyword_automations::answer(&app, std::mem::take(&mut report.answered)).await;
    super::status_automations::follow(&app, std::mem::take(&mut report.moved)).await;
    for _ in 0..report.applied {
        bump(&app.metrics.webhooks_applied);
    }
    for _ in 0..report.repeats {
        bump(&app.metrics.webhooks_repeated);
    }
    for _ in 0..report.ignored {
        bump(&app.metrics.webhooks_ignored);
    }
    Ok(reply::ok(&json!({
        "applied": report.applied,
        "repeats": report.repeats,
        "ignored": report.ignored,
    })))
}

/// The `messages` changes of the webhook for tenants with a callback, one webhook each, with
/// the ids of statuses turned into wagate's ids (what the tenant got when it sent).
fn forwards(
    app: &App,
    changes: &[MessagesChange],
) -> Result<Vec<Forward>, wagate_durable::SubmitError> {
    let mut out = Vec::new();
    for MessagesChange {
        account,
        change: raw,
        number,
    } in changes
    {
        let Some(tenant) = app.tenants.owner(*number) else {
            continue;
        };
        if !app.forwarder.has_callback(&tenant.name) {
            continue;
        }
        // Only for a tenant with a callback: the change as a JSON tree, whose canonical
        // text is the forward's identity.
        let Ok(mut change) = serde_json::from_str::<Value>(raw.get()) else {
            continue;
        };
        let identity = identity_of(change.to_string().as_bytes());
        for status in change["value"]["statuses"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let Some(wamid) = status["id"].as_str().map(str::to_string) else {
                continue;
            };
            if let Some(id) = app.wagate.message_id_of(&wamid)? {
                status["id"] = json!(message_id_text(id));
                status["wamid"] = json!(wamid);
            }
        }
        let account = account
            .and_then(|id| serde_json::from_str::<Value>(id.get()).ok())
            .unwrap_or(Value::Null);
        let webhook = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": account, "changes": [change] }],
        });
        out.push(Forward {
            tenant: tenant.name.clone(),
            body: webhook.to_string().into_bytes(),
            identity,
        });
    }
    Ok(out)
}
