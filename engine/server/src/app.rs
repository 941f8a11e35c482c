//! What every handler shares, and the routes.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::body_budget::BodyBudget;
use super::config::ServerConfig;
use super::forward::Forwarder;
use super::headers::Headers;
use super::ingest::Ingest;
use super::metrics::{bump, Metrics};
use super::reply::ApiErrorResponse;
use super::tenants::Tenants;
use super::upstream::MetaUpstream;
use super::{admin, bulk, meta_webhook, send};
use wagate_cloud_api::error::ApiError;
use wagate_durable::Wagate;
use wagate_rules::clock::ManualClock;

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
        .route("/wagate/v1/bulk", post(bulk::bulk))
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

/// The store failed under a request: Meta's shape for a service that is unavailable.
pub fn store_error(error: wagate_store::StoreError) -> ApiErrorResponse {
    ApiError::from(&wagate_durable::SubmitError::Unavailable(error)).into()
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
