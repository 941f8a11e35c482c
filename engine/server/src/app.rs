//! The routes, `/metrics` and the middleware that times every routed request.

use std::borrow::Cow;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument;

use super::metrics::{bump, Snapshot};
use super::reply::ApiErrorResponse;
use super::state::App;
use super::{
    admin, bulk, consent_api, consent_history_api, media, media_upload, meta_webhook, pass_through,
    send, templates_api,
};
use wagate_cloud_api::error::ApiError;

/// `/metrics` speaks OpenMetrics (counters' samples end in `_total`, histograms carry units).
const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape may wait for the engine's figures.
const METRICS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Numbers whose usage one scrape reports at most (a scrape must stay cheap).
const USAGE_NUMBERS_PER_SCRAPE: usize = 1_000;

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route(send::SEND_ENDPOINT, post(send::single))
        .route(
            "/{version}/{waba_id}/message_templates",
            post(templates_api::create)
                .get(pass_through::pass_through)
                .delete(pass_through::pass_through),
        )
        .route("/{version}/{number}/media", post(media_upload::upload))
        .route("/wagate/v1/media/{media_id}/content", get(media::content))
        .route("/wagate/v1/bulk", post(bulk::bulk))
        .route(
            "/wagate/v1/messages/{id}",
            get(send::status)
                .delete(super::queued_api::cancel)
                .patch(super::queued_api::reschedule)
                .route_layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    super::console::cookie_auth,
                )),
        )
        .route(
            "/wagate/v1/scheduled",
            get(super::queued_api::list).route_layer(axum::middleware::from_fn_with_state(
                app.clone(),
                super::console::cookie_auth,
            )),
        )
        .route(
            "/wagate/v1/campaigns/plan",
            post(super::campaign_plan_api::plan_campaign),
        )
        .route(
            "/wagate/v1/campaigns",
            post(super::campaigns_api::create)
                .get(super::campaigns_api::list)
                .route_layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    super::console::cookie_auth,
                )),
        )
        .route("/wagate/v1/campaigns/{id}", get(super::campaigns_api::read))
        .route("/wagate/v1/events", post(super::events_api::receive))
        .route("/wagate/v1/groups", get(super::groups_view::list))
        .route("/wagate/v1/groups/{id}", get(super::groups_view::read))
        .route(
            "/wagate/v1/campaigns/{id}/{action}",
            post(super::campaigns_api::act),
        )
        .route(
            "/webhooks/meta",
            get(meta_webhook::handshake).post(meta_webhook::receive),
        )
        .merge(admin_api(&app))
        .merge(super::console::routes())
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(pass_through::pass_through)
        .layer(axum::middleware::from_fn_with_state(app.clone(), timed))
        // Bodies are read with each route's own limit (see `read_body`), in Meta's error shape.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// The admin API, reached with the admin token or a console session's cookie.
fn admin_api(app: &App) -> Router<App> {
    admin::routes()
        .route(
            "/wagate/admin/contacts/{number}/{to}/history",
            get(consent_history_api::history),
        )
        .route(
            "/wagate/admin/consent/export",
            get(consent_history_api::export),
        )
        .route("/wagate/admin/consent/import", post(consent_api::import))
        .route("/wagate/admin/numbers", get(super::admin_lists::numbers))
        .route(
            "/wagate/admin/numbers/{id}/capacity",
            get(super::admin_lists::capacity),
        )
        .route(
            "/wagate/admin/templates",
            get(super::admin_lists::templates),
        )
        .route(
            "/wagate/admin/templates/lint",
            post(super::admin_lists::lint_template),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::console::cookie_auth,
        ))
}

/// Prometheus' scrape; with `http.metrics_token` set, only for the bearer of that token.
async fn metrics(
    axum::extract::State(app): axum::extract::State<App>,
    headers: axum::http::HeaderMap,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiErrorResponse> {
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
    let app = app.clone();
    // Usage goes through the shard workers: off the async threads.
    let rendering = tokio::task::spawn_blocking(move || {
        let usage = app
            .wagate
            .registry()
            .numbers()
            .iter()
            .take(USAGE_NUMBERS_PER_SCRAPE)
            .filter_map(|number| Some((number.id.0, app.wagate.limit_usage(number.id).ok()?)))
            .collect();
        app.metrics.render(Snapshot {
            dispatch: app.wagate.dispatch_view(),
            pending: app.ingest.pending(),
            forward_backlog: app.forwarder.backlog(),
            sending_now: app.wagate.sending_now(),
            bodies_held: app.bodies.held(),
            usage,
            campaigns: app.wagate.campaigns_by_state(),
        })
    });
    // The usage reads wait on the shard workers: bounded, like every wait.
    let rendered = match tokio::time::timeout(METRICS_DEADLINE, rendering).await {
        Ok(rendered) => rendered.map_err(|error| error.to_string()),
        Err(_) => Err(format!("not rendered within {METRICS_DEADLINE:?}")),
    };
    let text = rendered.map_err(|error| {
        tracing::error!(%error, "rendering /metrics failed");
        ApiErrorResponse::from(ApiError::new(
            500,
            1,
            "An unknown error occurred",
            error,
            "internal",
        ))
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, OPEN_METRICS)], text))
}

/// Records each routed request's time under its route (`unmatched` for the fallback), and runs
/// it in a span naming that route and, once the handler knows them, the tenant, the number and
/// the message, so whatever it logs says which endpoint it was serving and for whom. (The
/// single send endpoint's requests are mostly answered by the front, without a span: its
/// events carry their own fields.)
async fn timed(
    axum::extract::State(app): axum::extract::State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let endpoint = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(Cow::Borrowed("unmatched"), |path| {
            Cow::Owned(path.as_str().to_string())
        });
    let started = std::time::Instant::now();
    // The handler fills in whom and what the request is about once it knows.
    let span = tracing::info_span!(
        "request",
        endpoint = %endpoint,
        tenant = tracing::field::Empty,
        number = tracing::field::Empty,
        message_id = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span).await;
    app.metrics.request_took(endpoint, started.elapsed());
    response
}
