//! What every handler shares, and the routes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

use super::body_budget::{BodyBudget, Claim};
use super::config::ServerConfig;
use super::forward::Forwarder;
use super::headers::Headers;
use super::ingest::Ingest;
use super::metrics::{bump, Metrics};
use super::reply::ApiErrorResponse;
use super::tenants::Tenants;
use super::upstream::MetaUpstream;
use super::{admin, meta_webhook, send};
use crate::clock::ManualClock;
use crate::cloud_api::error::ApiError;
use crate::durable::Wagate;

pub struct AppState {
    pub wagate: Arc<Wagate>,
    pub ingest: Ingest,
    pub tenants: Tenants,
    pub config: ServerConfig,
    /// Set when the clock is manual: the admin API moves it.
    pub manual_clock: Option<ManualClock>,
    pub metrics: Arc<Metrics>,
    pub upstream: Arc<MetaUpstream>,
    pub forwarder: Arc<Forwarder>,
    /// The bytes of bodies all unfinished requests hold, under `http.max_body_bytes_held`.
    pub bodies: Arc<BodyBudget>,
    /// Turns true when the server starts to shut down: long-lived streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

pub type App = Arc<AppState>;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/{version}/{number}/messages", post(send::single))
        .route("/wagate/v1/bulk", post(send::bulk))
        .route("/wagate/v1/messages/{id}", get(send::status))
        .route(
            "/webhooks/meta",
            get(meta_webhook::handshake).post(meta_webhook::receive),
        )
        .merge(admin::routes())
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        // Bodies are read with each route's own limit (see `read_body`), in Meta's error shape.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// Prometheus' scrape; with `http.metrics_token` set, only for the bearer of that token.
async fn metrics(
    axum::extract::State(app): axum::extract::State<App>,
    headers: axum::http::HeaderMap,
) -> Result<String, ApiErrorResponse> {
    let wanted = &app.config.http.metrics_token;
    if !wanted.is_empty() {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|token| super::tenants::constant_time_eq(token, wanted)) {
            bump(&app.metrics.unauthorized);
            return Err(ApiError::new(
                401,
                190,
                "Invalid OAuth access token",
                "/metrics needs the http.metrics_token as a Bearer token",
                "unauthorized",
            )
            .into());
        }
    }
    Ok(app.metrics.render(
        app.wagate.dispatch_view(),
        app.ingest.pending(),
        app.forwarder.backlog(),
        app.wagate.sending_now(),
        app.bodies.held(),
    ))
}

async fn not_found() -> ApiErrorResponse {
    ApiError::new(
        404,
        100,
        "Unknown path components",
        "no such endpoint",
        "unknown_endpoint",
    )
    .into()
}

/// Past the limit, how much more of a body is read (and dropped) so that the client, still
/// sending, gets the 413 rather than a reset connection.
const DRAIN_BEYOND_LIMIT: usize = 16 << 20;

/// The whole body, refused in Meta's shape when larger than `limit`.
/// Room reserved for a body before its bytes arrive, at most.
const FIRST_BODY_ROOM: usize = 1 << 20;

pub async fn read_body(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
    metrics: &Metrics,
    claim: &mut Claim,
) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;

    let deadline = tokio::time::Instant::now() + timeout;

    let too_large = |metrics: &Metrics| {
        bump(&metrics.invalid);
        ApiError::new(
            413,
            100,
            "Invalid parameter",
            format!("the body is larger than {limit} bytes"),
            "body_too_large",
        )
    };
    let unreadable =
        |e: axum::Error| ApiError::invalid_parameter(format!("the body could not be read: {e}"));
    let mut body = body;
    // Sized from Content-Length when there is one (growing by doubling copied a bulk body
    // about twice over), but only up to a first step: an announced length is not memory until
    // its bytes arrive (a stalled upload announcing 64 MiB held 64 MiB).
    let expected = hyper::body::Body::size_hint(&body).exact().unwrap_or(0);
    let first_step = (expected as usize).min(limit).min(FIRST_BODY_ROOM);
    // Past `http.max_body_bytes_held`: the rest is read and dropped, then refused.
    let mut over_budget = !claim.grow(first_step);
    let mut kept = bytes::BytesMut::with_capacity(if over_budget { 0 } else { first_step });
    let mut seen = 0usize;
    loop {
        // A body trickled in byte by byte must not hold its connection (and memory) forever.
        let Ok(frame) = tokio::time::timeout_at(deadline, body.frame()).await else {
            bump(&metrics.invalid);
            return Err(ApiError::new(
                408,
                100,
                "Invalid parameter",
                format!("the body did not arrive within {} ms", timeout.as_millis()),
                "body_timeout",
            ));
        };
        let Some(frame) = frame else {
            break;
        };
        let Ok(data) = frame.map_err(unreadable)?.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > limit + DRAIN_BEYOND_LIMIT {
            break;
        }
        if seen <= limit && !over_budget {
            // Claimed as it arrives, beyond what was claimed for the first step.
            let beyond = seen.saturating_sub(claim.bytes());
            if beyond > 0 && !claim.grow(beyond) {
                // Read on and dropped, like a body past its limit, so that the client gets
                // the answer rather than a reset connection.
                over_budget = true;
                kept = bytes::BytesMut::new();
                continue;
            }
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(too_large(metrics));
    }
    if over_budget {
        return Err(bodies_full(metrics));
    }
    Ok(kept.freeze())
}

/// [`read_body`] with the server's own deadline for bodies.
pub async fn read_request_body(app: &App, body: Body, limit: usize) -> Result<ReadBody, ApiError> {
    let mut claim = app.bodies.claim();
    let bytes = read_body(
        body,
        limit,
        app.config.http.body_read_timeout(),
        &app.metrics,
        &mut claim,
    )
    .await?;
    Ok(ReadBody {
        bytes,
        _claim: claim,
    })
}

/// A request's body, read whole, with its claim on `http.max_body_bytes_held` (given back
/// when the body is dropped, once the request is done with it).
pub struct ReadBody {
    pub bytes: Bytes,
    _claim: Claim,
}

impl ReadBody {
    /// The bytes, and the claim to keep for as long as anything made from them is held.
    pub fn into_parts(self) -> (Bytes, Claim) {
        (self.bytes, self._claim)
    }
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Refuses a body when all the unfinished requests' bodies together hold
/// `http.max_body_bytes_held`: retry shortly (Meta's shape for a service briefly unavailable).
pub fn bodies_full(metrics: &Metrics) -> ApiError {
    bump(&metrics.bodies_refused);
    ApiError::new(
        503,
        2,
        "Service temporarily unavailable",
        "the request bodies being read hold http.max_body_bytes_held; retry shortly",
        "bodies_full",
    )
}

/// The store failed under a request: Meta's shape for a service that is unavailable.
pub fn store_error(error: crate::store::StoreError) -> ApiErrorResponse {
    ApiError::from(&crate::durable::SubmitError::Unavailable(error)).into()
}

/// Runs blocking engine work off the async threads; a panic in it answers 500.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiErrorResponse> + Send + 'static,
) -> Result<T, ApiErrorResponse> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiErrorResponse::from(ApiError::new(
            500,
            1,
            "An unknown error occurred",
            e.to_string(),
            "internal",
        ))
    })?
}

/// Refuses a body that does not say it is `expected`.
pub fn require_content_type<H: Headers + ?Sized>(
    headers: &H,
    expected: &str,
) -> Result<(), ApiError> {
    let given = headers.text("content-type").flatten().unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            100,
            "Invalid parameter",
            format!("Content-Type must be {expected}, not '{given}'"),
            "unsupported_content_type",
        ))
    }
}
