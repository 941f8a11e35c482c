//! # wagate-server
//!
//! `wagate serve`: the engine behind Meta's Cloud API surface. Senders change only their
//! base URL; wagate checks, paces, prices, persists and dispatches every message.
//!
//! Threads: tokio's (HTTP, the upstream and forwarding I/O), wagate's shard workers and
//! committers, the dispatcher, the hand-over lanes, and the releaser of queued
//! sends.

mod accept;
mod admin;
mod admin_access;
mod admin_lists;
mod app;
mod automation_send;
mod block_reads;
mod body_budget;
mod body_read;
mod bulk;
mod campaign_plan_api;
mod campaigns_api;
pub mod cluster;
pub mod cluster_config;
pub mod config;
mod consent_api;
mod consent_history_api;
mod console;
mod console_sessions;
mod descriptors;
mod erasure_api;
mod events_api;
mod forward;
mod front;
mod graph;
mod groups_api;
mod groups_view;
pub mod grpc;
mod grpc_port;
mod grpc_records;
mod headers;
mod http_client;
mod ingest;
mod keyword_automations;
pub mod keyword_config;
mod media;
mod media_ids;
mod media_owner;
mod media_upload;
mod meta_pacing;
mod meta_sync;
mod meta_webhook;
mod metrics;
mod number_reads;
mod on_behalf;
mod opt_out_confirmation;
mod overrides;
mod own_callbacks;
mod own_status;
mod ownership;
mod pass_through;
mod queued_api;
mod recent_calls;
mod refused_tokens;
mod registrations;
mod reply;
mod send;
mod send_options;
mod state;
mod status_automations;
mod template_body;
mod template_by_id;
mod template_reads;
mod templates_api;
mod tenants;
mod upstream;
mod usage_view;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use self::config::{ClockMode, ServerConfig};
use self::forward::Forwarder;
use self::ingest::Ingest;
use self::metrics::Metrics;
use self::state::{App, AppState};
use self::tenants::Tenants;
use self::upstream::{MetaUpstream, SharedMetaUpstream};
use wagate_durable::wagate::OpenError;
use wagate_durable::{Wagate, WagateConfig};
use wagate_rules::clock::{Clock, ManualClock, SystemClock, Timestamp};
use wagate_rules::config::EngineConfig;
use wagate_rules::ids::{AccountId, PhoneNumberId, PortfolioId};
use wagate_rules::profile::Profile;
use wagate_rules::registry::NumberRegistration;

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Open requests finished, queued work was written and what was due was handed to Meta;
    /// the engine shut down within the grace.
    Cleanly,
    /// The grace ran out first: what was accepted is on disk, messages being sent stay in
    /// flight (never pending) for an operator after the restart, later slots stay pending.
    GraceRanOut,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("profile: {0}")]
    Profile(String),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("number {0} in the config: {1}")]
    Seed(u64, String),
    #[error("forwarding: {0}")]
    Forward(#[from] wagate_store::StoreError),
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    #[error("cluster: {0}")]
    Cluster(String),
}

/// The rate cards of `profile` in `dir` (its `*.toml` files, each at most 1 MiB).
fn rate_cards_from(
    dir: &str,
    profile: &str,
) -> Result<wagate_rules::rate_cards::RateCards, ServeError> {
    let unreadable = |e: std::io::Error| ServeError::Profile(format!("rate cards in {dir}: {e}"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        if std::fs::metadata(&path).map_err(unreadable)?.len() > 1 << 20 {
            return Err(ServeError::Profile(format!(
                "{} is over 1 MiB",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(unreadable)?;
        files.push((path.display().to_string(), text));
    }
    wagate_rules::rate_cards::RateCards::parse(
        profile,
        files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    )
    .map_err(|e| ServeError::Profile(e.to_string()))
}

/// Sends released per round of the releaser.
const RELEASE_BATCH: usize = 4_096;
/// How often the releaser looks for queued sends that came due.
const RELEASE_POLL: Duration = Duration::from_millis(20);

/// The embedded profile of that name, or a provider's own profile file (a path ending in
/// `.toml`, in the embedded profiles' format).
fn profile_named(name: &str) -> Result<Profile, ServeError> {
    let refused = ServeError::Profile;
    if name.ends_with(".toml") {
        let text = std::fs::read_to_string(name)
            .map_err(|e| refused(format!("profile file {name}: {e}")))?;
        let profile = Profile::parse(&text).map_err(|e| refused(e.to_string()))?;
        tracing::info!(file = name, profile = %profile.name, "policy profile loaded from a file");
        return Ok(profile);
    }
    Profile::embedded(name).map_err(|e| refused(e.to_string()))
}

fn open_engine(
    config: &ServerConfig,
    store: Option<Arc<dyn wagate_store::Store>>,
    clock: Arc<dyn Clock>,
    upstream: SharedMetaUpstream,
) -> Result<Wagate, ServeError> {
    let mut profile = profile_named(&config.engine.profile)?;
    if !config.engine.rate_cards_dir.is_empty() {
        profile.rate_cards = rate_cards_from(&config.engine.rate_cards_dir, &profile.name)?;
        tracing::info!(
            dir = %config.engine.rate_cards_dir,
            cards = profile.rate_cards.effective_times().len(),
            "rate cards loaded"
        );
    }
    let mut engine = EngineConfig::new(profile);
    engine.shards = config.engine.shards;
    engine.marketing_cap_per_day = config.engine.marketing_cap_per_day;
    engine.schedule_horizon_secs = config.engine.schedule_horizon_secs;
    engine.apply_projected_upgrades = config.engine.apply_projected_upgrades;
    engine.keywords = keyword_config::merged(&config.consent.keywords);
    engine.topics = config.consent.topics.clone();
    engine.number_keywords = config
        .tenants
        .iter()
        .filter_map(|t| keyword_config::of_tenant(&t.numbers, &t.keywords))
        .collect();
    engine.automations = config
        .tenants
        .iter()
        .flat_map(|t| {
            t.numbers
                .iter()
                .map(move |n| t.automations_of(PhoneNumberId(*n)))
        })
        .filter(|n| !n.keywords.is_empty() || !n.statuses.is_empty())
        .collect();
    engine.pools = config
        .pools()
        .into_iter()
        .map(|(_, _, numbers)| numbers.iter().map(|n| PhoneNumberId(*n)).collect())
        .collect();
    engine.quiet_hours = config
        .tenants
        .iter()
        .filter_map(|t| Some((t, t.quiet_hours.as_ref()?.rule().ok()?)))
        .flat_map(|(t, rule)| t.numbers.iter().map(move |n| (PhoneNumberId(*n), rule)))
        .collect();
    engine.consent_per_number = config
        .tenants
        .iter()
        .filter(|t| t.consent_scope == config::ConsentScope::Number)
        .flat_map(|t| t.numbers.iter().map(|n| PhoneNumberId(*n)))
        .collect();
    let wagate_config = WagateConfig {
        engine,
        data_dir: config.storage.data_dir.clone(),
        idempotency_retention_secs: config.storage.idempotency_retention_secs,
        sync: config.storage.sync,
        commit_interval: std::time::Duration::from_micros(config.storage.commit_interval_us),
    };
    let wagate = match store {
        Some(store) => Wagate::open_with_store(wagate_config, store, clock, Arc::new(upstream))?,
        None => Wagate::open(wagate_config, clock, Arc::new(upstream))?,
    };
    for seed in &config.numbers {
        let id = PhoneNumberId(seed.id);
        if wagate.registry().number(id).is_some() {
            continue;
        }
        let display = seed
            .display_phone_number
            .as_deref()
            .map(wagate_rules::ids::Msisdn::parse)
            .transpose()
            .map_err(|e| ServeError::Seed(seed.id, format!("display_phone_number: {e}")))?;
        wagate
            .register_number(NumberRegistration {
                id,
                account: AccountId(seed.account),
                portfolio: PortfolioId(seed.portfolio),
                tier: seed.tier.clone(),
                throughput_mps: seed.throughput_mps,
                display_phone_number: display,
            })
            .map_err(|e| ServeError::Seed(seed.id, e.to_string()))?;
    }
    Ok(wagate)
}

/// Re-decides queued sends as they come due, and finishes erasures that came due, until
/// `stop`.
fn run_releaser(wagate: Arc<Wagate>, metrics: Arc<Metrics>, stop: Arc<AtomicBool>) {
    let mut confirmed_at = 0;
    let mut failures = wagate_durable::log_limit::LogLimit::default();
    while !stop.load(Ordering::Acquire) {
        // Projected upgrades (where wagate may apply them) are looked at once a second.
        let second = wagate.now().secs();
        if second != confirmed_at {
            wagate.confirm_projections();
            if wagate.unfinished_erasures() > 0 {
                if let Err(error) = wagate.finish_erasures() {
                    tracing::error!(%error, "finishing an erasure failed: tried again");
                }
            }
            confirmed_at = second;
        }
        run_campaigns(&wagate, &metrics, &mut failures);
        match wagate.release_due_reporting(RELEASE_BATCH) {
            Ok(released) if released.count == 0 => std::thread::sleep(RELEASE_POLL),
            Err(error) => {
                if let Some(times) = failures.admit() {
                    tracing::error!(%error, times, "releasing queued sends failed: tried again");
                }
                std::thread::sleep(RELEASE_POLL);
            }
            Ok(released) => {
                metrics.released.inc_by(released.count as u64);
                metrics.queued_dropped.inc_by(released.dropped.len() as u64);
            }
        }
    }
    tracing::info!("the releaser of queued sends stopped");
}

/// Feeds running campaigns a part each, and tells their tenants what they did.
fn run_campaigns(
    wagate: &Wagate,
    metrics: &Metrics,
    failures: &mut wagate_durable::log_limit::LogLimit,
) {
    match wagate.run_campaigns() {
        Ok(events) if events.is_empty() => {}
        Ok(events) => {
            for event in &events {
                metrics
                    .campaign_events
                    .get_or_create(&metrics::CampaignEventLabels {
                        event: event.event,
                        reason: event.reason.unwrap_or(""),
                    })
                    .inc();
                tracing::info!(
                    campaign = event.campaign,
                    event = event.event,
                    reason = event.reason.unwrap_or(""),
                    "campaign event"
                );
            }
        }
        Err(error) => {
            if let Some(times) = failures.admit() {
                tracing::error!(%error, times, "feeding campaigns failed: tried again");
            }
        }
    }
}

/// Where the server listens (the ports actually bound, when the config asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

/// Runs the server until `shutdown` resolves, then stops taking requests, finishes the open
/// ones, drains the engine and flushes. `on_listening` gets the bound addresses.
pub async fn serve(
    config: ServerConfig,
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    serve_over(config, None, on_listening, shutdown).await
}

/// Like [`serve`], over `store` when given instead of the RocksDB store in
/// `storage.data_dir` (a cluster partition's replicated store).
pub async fn serve_over(
    config: ServerConfig,
    store: Option<Arc<dyn wagate_store::Store>>,
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    let listener = bind(config.http.listen).await?;
    let grpc_listener = bind(config.grpc.listen).await?;
    let manual_clock = (config.clock.mode == ClockMode::Manual)
        .then(|| ManualClock::new(Timestamp::from_unix_secs(config.clock.start_unix_secs)));
    let clock: Arc<dyn Clock> = match &manual_clock {
        Some(manual) => Arc::new(manual.clone()),
        None => Arc::new(SystemClock),
    };
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(MetaUpstream::new(
        &config.meta,
        config.tenant_meta_tokens(),
        clock.clone(),
        tokio::runtime::Handle::current(),
        metrics.clone(),
    ));
    for warning in config.warnings() {
        tracing::warn!("config: {warning}");
    }
    let without_token: Vec<u64> = config
        .tenants
        .iter()
        .filter(|t| t.meta_access_token.is_none())
        .flat_map(|t| t.numbers.iter().copied())
        .collect();
    if config.meta.access_token.is_empty() && !without_token.is_empty() {
        // Not refused: the embedded defaults start without one. Meta refuses such sends as
        // unauthorised, and those are retried (never failed) until a token is set.
        tracing::warn!(
            numbers = ?without_token,
            "meta.access_token is empty: sends from these numbers wait until it is set"
        );
    }
    let shared = SharedMetaUpstream(upstream.clone());
    let opening = config.clone();
    let wagate = tokio::task::spawn_blocking(move || open_engine(&opening, store, clock, shared))
        .await
        .expect("opening the engine does not panic")?;
    let wagate = Arc::new(wagate);
    for number in wagate.registry().numbers() {
        upstream.set_throughput(number.id.0, number.throughput.messages_per_second());
    }
    metrics.include(&wagate.metrics());
    let forwarder = Arc::new(Forwarder::open(
        wagate.clone(),
        &config.tenants,
        metrics.clone(),
        Duration::from_millis(config.meta.request_timeout_ms),
    )?);
    let (stop_forwarding, forwarding_stopped) = watch::channel(false);
    let forwarding = tokio::spawn(forwarder.clone().run(forwarding_stopped));
    let own_callbacks = Arc::new(own_callbacks::OwnCallbacks::new(
        forwarder.clone(),
        &config.tenants,
    ));
    if own_callbacks.any() {
        // wagate's own news goes into the write that records what it tells of.
        let writer = own_callbacks.news_writer(wagate.registry());
        if wagate.on_tenant_news(Box::new(writer)).is_err() {
            tracing::warn!("the tenants' news already had a writer");
        }
    }
    let stop_releasing = Arc::new(AtomicBool::new(false));
    let releaser = {
        let (wagate, metrics, stop) = (wagate.clone(), metrics.clone(), stop_releasing.clone());
        std::thread::Builder::new()
            .name("wagate-release".into())
            .spawn(move || run_releaser(wagate, metrics, stop))
            .expect("spawning the releaser")
    };
    let (closing, closed) = watch::channel(false);
    let registrations = registrations::RegistrationCalls::kept(wagate.clone());
    let template_edits = recent_calls::RecentCalls::kept(wagate.clone(), template_by_id::EDITS_TAG);
    let app: App = Arc::new(AppState {
        closing: closed.clone(),
        bodies: body_budget::BodyBudget::new(config.http.max_body_bytes_held),
        ingest: Ingest::new(wagate.clone(), config.http.max_pending_messages),
        tenants: Tenants::new(&config.tenants, &config.admin.token, &config.pools()),
        wagate,
        manual_clock,
        metrics,
        upstream,
        graph: graph::MetaGraph::new(&config.meta),
        media_owners: media_ids::MediaOwners::default(),
        registrations,
        template_edits,
        forwarder,
        own_callbacks,
        config,
        console: Default::default(),
    });
    let grace = Duration::from_secs(app.config.http.shutdown_grace_secs);
    on_listening(Listening {
        http: listener.local_addr().map_err(ServeError::Http)?,
        grpc: grpc_listener.local_addr().map_err(ServeError::Http)?,
    });
    let mut closed_for_grpc = closed.clone();
    // One cap for both ports: they draw file descriptors from one process.
    let cap = accept::ConnectionCap::new(app.config.http.max_connections);
    let http_acceptor = accept::Acceptor::new(
        listener,
        cap.clone(),
        "http",
        front::TOO_MANY_CONNECTIONS,
        app.metrics.connections_refused.clone(),
    );
    let grpc_acceptor = accept::Acceptor::new(
        grpc_listener,
        cap,
        "grpc",
        b"",
        app.metrics.connections_refused.clone(),
    );
    let server = tokio::spawn(front::serve(
        http_acceptor,
        app.clone(),
        app::router(app.clone()),
        closed.clone(),
        grace,
    ));
    let limit = app.config.http.max_body_bytes + 4_096;
    let grpc = tonic::transport::Server::builder()
        .add_service(
            grpc::MessagingServer::new(grpc::GrpcIngest { app: app.clone() })
                .max_decoding_message_size(limit),
        )
        .add_service(
            grpc::proto::records_server::RecordsServer::new(grpc_records::GrpcRecords::new(
                grpc_records::RouterTwin::new(app.clone()),
            ))
            .max_decoding_message_size(limit),
        )
        .serve_with_incoming_shutdown(
            grpc_port::incoming(
                grpc_acceptor,
                (
                    app.config.http.header_read_timeout(),
                    app.config.http.idle_timeout(),
                ),
                app.metrics.connections_timed_out.clone(),
                closed.clone(),
            ),
            async move {
                let _ = closed_for_grpc.changed().await;
            },
        );
    let mut grpc = tokio::spawn(grpc);
    if app.config.meta.sync_interval_secs > 0 {
        // Ends when the server starts closing; a sync under way then is simply dropped.
        tokio::spawn(meta_sync::run(
            app.clone(),
            Duration::from_secs(app.config.meta.sync_interval_secs),
        ));
    }
    shutdown.await;
    // One deadline for the whole stop: each step takes what is left of it, not a grace of its
    // own.
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(grace_secs = grace.as_secs(), "stopping");
    let _ = closing.send(true);
    // Open requests finish; new connections are no longer taken; the front cuts off what is
    // still open at the deadline (it holds the engine).
    let _ = server.await;
    if tokio::time::timeout_at(deadline, &mut grpc).await.is_err() {
        grpc.abort();
        let _ = grpc.await;
    }
    drop(closed);
    let _ = stop_forwarding.send(true);
    let _ = tokio::time::timeout_at(deadline, forwarding).await;
    stop_releasing.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || releaser.join()).await;
    let stopped = finish(app, deadline).await;
    match stopped {
        Stopped::Cleanly => tracing::info!("stopped: the engine shut down"),
        Stopped::GraceRanOut => tracing::warn!(
            "the grace ran out before the engine shut down: accepted work is on disk, messages \
             being sent stay in flight for an operator, later slots stay pending"
        ),
    }
    Ok(stopped)
}

/// Stops the engine (decisions, commits and due dispatches finish, the store is flushed and
/// closed) once nothing else holds it.
/// Shuts the engine down once nothing else holds it, by `deadline`: true if it did.
async fn finish(mut app: App, deadline: tokio::time::Instant) -> Stopped {
    // Tasks that outlived the server's (a webhook group, a keyed batch) hold the state; they
    // finish on their own, so wait for them, not past the deadline.
    let state = loop {
        match Arc::try_unwrap(app) {
            Ok(state) => break state,
            Err(shared) if tokio::time::Instant::now() < deadline => {
                app = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => return Stopped::GraceRanOut,
        }
    };
    let AppState {
        ingest,
        wagate,
        forwarder,
        registrations,
        template_edits,
        own_callbacks,
        ..
    } = state;
    // These hold the engine; it stops only when this is its last holder.
    drop((
        forwarder,
        ingest,
        registrations,
        template_edits,
        own_callbacks,
    ));
    let mut wagate = wagate;
    let wagate = loop {
        match Arc::try_unwrap(wagate) {
            Ok(wagate) => break wagate,
            Err(shared) if tokio::time::Instant::now() < deadline => {
                wagate = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => return Stopped::GraceRanOut,
        }
    };
    // The dispatcher waits for the sends it handed over; past the deadline the process ends
    // anyway, and those stay in flight on disk (marked before they went).
    let shutting = tokio::task::spawn_blocking(move || wagate.shutdown());
    match tokio::time::timeout_at(deadline, shutting).await {
        Ok(_) => Stopped::Cleanly,
        Err(_) => Stopped::GraceRanOut,
    }
}
