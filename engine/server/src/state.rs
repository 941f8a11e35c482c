//! What every handler shares ([`AppState`]) and the small helpers they all use: off-thread
//! work, the content-type check, store errors in Meta's shape. The routes are `app`'s.

use std::sync::Arc;

use super::body_budget::BodyBudget;
use super::config::ServerConfig;
use super::forward::Forwarder;
use super::graph::MetaGraph;
use super::headers::Headers;
use super::ingest::Ingest;
use super::media_ids::MediaOwners;
use super::metrics::Metrics;
use super::recent_calls::RecentCalls;
use super::registrations::RegistrationCalls;
use super::reply::ApiErrorResponse;
use super::tenants::Tenants;
use super::upstream::MetaUpstream;
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
    /// Calls to Meta made now on a caller's behalf (read marks, the pass-through).
    pub(crate) graph: MetaGraph,
    /// The numbers of media ids uploaded or read through wagate.
    pub(crate) media_owners: MediaOwners,
    /// Registration calls passed to Meta per number (Meta allows 10 in 72 h).
    pub(crate) registrations: RegistrationCalls,
    /// Edits of approved templates Meta took, by Meta's template id (1 a day, 10 in 30 days).
    pub(crate) template_edits: RecentCalls,
    pub forwarder: Arc<Forwarder>,
    /// wagate's own news of sends, to their tenants' callbacks.
    pub(crate) own_callbacks: Arc<super::own_callbacks::OwnCallbacks>,
    /// The bytes of bodies all unfinished requests hold, under `http.max_body_bytes_held`.
    pub bodies: Arc<BodyBudget>,
    /// Turns true when the server starts to shut down: long-lived streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// The operator console's sessions and live streams.
    pub(crate) console: super::console_sessions::Console,
}

impl AppState {
    /// The config of the tenant that owns `number`.
    pub(crate) fn tenant_config_of(
        &self,
        number: wagate_rules::ids::PhoneNumberId,
    ) -> Option<&super::config::TenantConfig> {
        let owner = self.tenants.owner(number)?;
        self.config.tenants.iter().find(|t| t.name == owner.name)
    }
}

pub(crate) type App = Arc<AppState>;

/// The store failed under a request: Meta's shape for a service that is unavailable.
pub(crate) fn store_error(error: wagate_store::StoreError) -> ApiErrorResponse {
    ApiError::from(&wagate_durable::SubmitError::Unavailable(error)).into()
}

/// Runs blocking engine work off the async threads; a panic in it answers 500.
pub(crate) async fn blocking<T: Send + 'static>(
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
pub(crate) fn require_content_type<H: Headers + ?Sized>(
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
