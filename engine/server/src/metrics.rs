//! `/metrics` in the Prometheus (OpenMetrics) text format, through `prometheus-client`: what
//! came in (requests per endpoint with their latency, connections, bodies), what the rules
//! decided (per tenant, number and outcome; refusals per reason), what went out (the upstream
//! with its latency, time queued, group commits), and gauges read at scrape time (queues,
//! in flight, each number's unique recipients against its limit).
//!
//! The counters are atomics; labelled ones are found in a map under a read lock, once per
//! decision, and histograms take a short lock per observation: nothing is formatted or
//! allocated per message except a refusal's reason.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use wagate_durable::dispatch::DispatchView;
use wagate_durable::metrics::DurableMetrics;
use wagate_rules::usage::Usage;

/// Counts one event.
pub(crate) fn bump(counter: &Counter) {
    counter.inc();
}

/// A counter registered in `registry` as `name`.
pub(crate) fn registered_counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

/// A tenant's name as a label value, shared (cloned per decision without allocating).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TenantName(pub Arc<str>);

impl EncodeLabelValue for TenantName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

/// What the rules made of a send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub tenant: TenantName,
    pub number: u64,
    /// `accepted`, `queued`, `deferred`, `refused` or `replayed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// wagate's stable name for the reason (`wagate_reason` in the answer).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The route as written in the router (`/{version}/{number}/messages`), or `grpc:Send`.
    pub endpoint: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// `sent`, `failed` (for good) or `retried`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GraphLabels {
    /// `read_mark` or `pass_through`.
    pub call: &'static str,
    /// Meta's answer's class (`2xx`, `4xx`, `5xx`) or `unreachable`.
    pub answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FactLabels {
    /// `quality`, `tier`, `throughput`, `template_status` or `template_known`.
    pub(crate) fact: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub(crate) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CampaignEventLabels {
    /// `paused`, `resumed` or `done`.
    pub(crate) event: &'static str,
    /// Why (`quality_dropped`, ...; empty for `done`).
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NumberLabels {
    pub number: u64,
}

/// Builds each labelled histogram with its buckets.
#[derive(Clone)]
pub struct Buckets(fn() -> Histogram);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        (self.0)()
    }
}

fn request_buckets() -> Histogram {
    // 50 µs to about 13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

fn upstream_buckets() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    /// Locked to add the durable engine's histograms once it is open, and per scrape.
    registry: Mutex<Registry>,
    pub requests: Counter,
    pub accepted: Counter,
    pub queued: Counter,
    pub deferred: Counter,
    pub refused: Counter,
    pub invalid: Counter,
    pub unauthorized: Counter,
    pub overloaded: Counter,
    pub replayed: Counter,
    pub released: Counter,
    pub webhooks_applied: Counter,
    pub webhooks_repeated: Counter,
    pub webhooks_ignored: Counter,
    /// Opt-out confirmations accepted to go, and those that could not.
    pub opt_out_confirmations: Counter,
    pub opt_out_confirmations_failed: Counter,
    pub automated_replies: Counter,
    pub automated_replies_failed: Counter,
    pub automated_replies_held: Counter,
    pub erasures: Counter,
    pub queued_dropped: Counter,
    pub webhooks_bad_signature: Counter,
    pub forwarded: Counter,
    pub connections_refused: Counter,
    pub connections_timed_out: Counter,
    pub bodies_refused: Counter,
    pub forward_failures: Counter,
    pub decisions: Family<DecisionLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub request_duration: Family<EndpointLabels, Histogram, Buckets>,
    pub upstream_duration: Family<UpstreamLabels, Histogram, Buckets>,
    pub graph_duration: Family<GraphLabels, Histogram, Buckets>,
    upstream_sent: Counter,
    upstream_failed: Counter,
    upstream_retried: Counter,
    dispatch_queued: Gauge,
    ingest_pending: Gauge,
    forward_backlog: Gauge,
    bodies_held: Gauge,
    upstream_in_flight: Gauge,
    usage_unique_24h: Family<NumberLabels, Gauge>,
    usage_limit: Family<NumberLabels, Gauge>,
    token_refused: Family<NumberLabels, Gauge>,
    upstream_pace: Family<NumberLabels, Gauge>,
    facts_applied: Family<FactLabels, Counter>,
    campaigns: Family<StateLabels, Gauge>,
    pub(crate) campaign_events: Family<CampaignEventLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What `/metrics` reads at scrape time.
pub struct Snapshot {
    pub dispatch: DispatchView,
    pub pending: usize,
    pub forward_backlog: u64,
    pub sending_now: usize,
    pub bodies_held: usize,
    pub usage: Vec<(u64, Usage)>,
    /// Campaigns by state (every state, zeros included).
    pub campaigns: Vec<(&'static str, u64)>,
}

impl Metrics {
    /// The server's metrics; the durable engine's join them with [`Metrics::include`].
    pub fn new() -> Metrics {
        // Help texts end without a period: prometheus-client adds one.
        let mut registry = Registry::with_prefix("wagate");
        let mut counter = |name: &str, help: &str| registered_counter(&mut registry, name, help);
        let requests = counter("http_requests", "Send, bulk, webhook and admin requests");
        let accepted = counter("messages_accepted", "Sends accepted and made durable");
        let queued = counter("messages_queued", "Sends queued until the rules allow them");
        let deferred = counter("messages_deferred", "Sends answered with a retry hint");
        let refused = counter("messages_refused", "Sends refused by a rule");
        let invalid = counter("requests_invalid", "Malformed or unknown requests");
        let unauthorized = counter("requests_unauthorized", "Requests without a valid token");
        let overloaded = counter("requests_overloaded", "Requests answered 503 (queues full)");
        let replayed = counter(
            "idempotent_replays",
            "Retries answered from the idempotency record",
        );
        let released = counter("messages_released", "Queued sends decided again when due");
        let webhooks_applied = counter("webhook_events_applied", "Meta webhook events applied");
        let opt_out_confirmations = counter(
            "opt_out_confirmations",
            "Confirmations accepted to go to people who opted out by keyword or button",
        );
        let queued_dropped = counter(
            "queued_sends_dropped",
            "Queued sends the rules refused when their turn came, each told to its tenant",
        );
        let erasures = counter(
            "erasures",
            "People erased from a business (right to erasure), each in the audit log",
        );
        let automated_replies = counter(
            "automated_replies",
            "Keyword automations' answers accepted to go to the person",
        );
        let automated_replies_failed = counter(
            "automated_replies_failed",
            "Keyword automations' answers the rules did not accept; each is logged",
        );
        let automated_replies_held = counter(
            "automated_replies_held",
            "Keyword automations' answers held by the loop guard (5 a person an hour)",
        );
        let opt_out_confirmations_failed = counter(
            "opt_out_confirmations_failed",
            "Opt-out confirmations that could not be accepted; each is logged",
        );
        let webhooks_repeated =
            counter("webhook_events_repeated", "Meta webhook events seen before");
        let webhooks_ignored = counter(
            "webhook_events_ignored",
            "Meta webhook events not acted on (not understood, or naming nothing known); each is logged",
        );
        let webhooks_bad_signature = counter(
            "webhook_bad_signatures",
            "Meta webhooks refused for their signature",
        );
        let connections_refused = counter(
            "connections_refused",
            "HTTP connections answered 503 and closed: http.max_connections were open",
        );
        let connections_timed_out = counter(
            "connections_timed_out",
            "HTTP connections closed for a head, body or answer not moved in time",
        );
        let bodies_refused = counter(
            "request_bodies_refused",
            "Requests answered 503 because the bodies being read held http.max_body_bytes_held",
        );
        let forwarded = counter("forwarded", "Webhooks delivered to tenants");
        let forward_failures =
            counter("forward_failures", "Failed deliveries to tenants (retried)");
        let upstream_sent = counter("upstream_sent", "Messages the upstream took");
        let upstream_failed = counter("upstream_failed", "Messages the upstream refused for good");
        let upstream_retried = counter("upstream_retried", "Upstream attempts to be retried");
        let campaigns = Family::<StateLabels, Gauge>::default();
        registry.register("campaigns", "Campaigns by state", campaigns.clone());
        let campaign_events = Family::<CampaignEventLabels, Counter>::default();
        registry.register(
            "campaign_events",
            "Campaigns paused, resumed and done, by why",
            campaign_events.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Sends decided, by tenant, number and outcome",
            decisions.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Sends refused (by a rule or by their own checks), by wagate_reason",
            refusals.clone(),
        );
        let request_duration = Family::new_with_constructor(Buckets(request_buckets));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its answer, by endpoint",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration = Family::new_with_constructor(Buckets(upstream_buckets));
        registry.register_with_unit(
            "upstream_request_duration",
            "Time one send to Meta took, by outcome",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let graph_duration = Family::new_with_constructor(Buckets(upstream_buckets));
        registry.register_with_unit(
            "meta_graph_request_duration",
            "Time a call made to Meta on a caller's behalf took (read marks, the pass-through), by call and answer",
            Unit::Seconds,
            graph_duration.clone(),
        );
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let dispatch_queued = gauge(
            "dispatch_queued",
            "Accepted messages waiting for their slot or a retry",
        );
        let ingest_pending = gauge("ingest_pending", "Sends admitted and not yet answered");
        let forward_backlog = gauge(
            "forward_backlog",
            "Webhooks waiting to be delivered to tenants",
        );
        let bodies_held = gauge(
            "request_body_bytes_held",
            "Bytes of request bodies held by unfinished requests (bounded by http.max_body_bytes_held)",
        );
        let upstream_in_flight = gauge(
            "upstream_in_flight",
            "Messages handed to Meta by this run and not yet settled",
        );
        let usage_unique_24h = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "usage_unique_recipients_24h",
            "Unique recipients of business-initiated messages in the rolling 24 h, by number (exact)",
            usage_unique_24h.clone(),
        );
        let usage_limit = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "usage_limit",
            "The number's messaging limit (unique recipients per rolling 24 h); absent when unlimited",
            usage_limit.clone(),
        );
        let token_refused = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "meta_token_refused",
            "1 while Meta refuses the access token a number sends with (code 190): its sends are held until Meta accepts the token",
            token_refused.clone(),
        );
        let upstream_pace = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "upstream_pace_messages_per_second",
            "The rate each number's sends go to Meta at: its throughput, lowered where Meta answered 130429",
            upstream_pace.clone(),
        );
        let facts_applied = Family::<FactLabels, Counter>::default();
        registry.register(
            "meta_facts_applied",
            "Facts about numbers and templates Meta reported that differed from wagate's state and were applied, by fact",
            facts_applied.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            accepted,
            queued,
            deferred,
            refused,
            invalid,
            unauthorized,
            overloaded,
            replayed,
            released,
            webhooks_applied,
            webhooks_repeated,
            webhooks_ignored,
            opt_out_confirmations,
            opt_out_confirmations_failed,
            automated_replies,
            automated_replies_failed,
            automated_replies_held,
            erasures,
            queued_dropped,
            webhooks_bad_signature,
            forwarded,
            connections_refused,
            connections_timed_out,
            bodies_refused,
            forward_failures,
            decisions,
            refusals,
            request_duration,
            upstream_duration,
            graph_duration,
            upstream_sent,
            upstream_failed,
            upstream_retried,
            dispatch_queued,
            ingest_pending,
            forward_backlog,
            bodies_held,
            upstream_in_flight,
            usage_unique_24h,
            usage_limit,
            token_refused,
            upstream_pace,
            facts_applied,
            campaigns,
            campaign_events,
        }
    }

    /// Adds the durable engine's histograms (group commits, time queued).
    pub fn include(&self, durable: &DurableMetrics) {
        durable.register(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Counts one decided send.
    pub fn decided(&self, tenant: &TenantName, number: u64, outcome: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                tenant: tenant.clone(),
                number,
                outcome,
            })
            .inc();
    }

    /// Counts one refusal by its reason.
    pub fn refused_for(&self, reason: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records how long a request to `endpoint` took.
    pub fn request_took(&self, endpoint: Cow<'static, str>, took: Duration) {
        self.request_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
    }

    /// Records how long one send to Meta took, and what came of it.
    pub fn upstream_took(&self, outcome: &'static str, took: Duration) {
        self.upstream_duration
            .get_or_create(&UpstreamLabels { outcome })
            .observe(took.as_secs_f64());
    }

    /// A fact about a number Meta reported, applied.
    pub fn fact_applied(&self, fact: &'static str) {
        self.facts_applied_times(fact, 1);
    }

    /// `times` facts of one kind applied at once (the people of a block list).
    pub fn facts_applied_times(&self, fact: &'static str, times: u64) {
        self.facts_applied
            .get_or_create(&FactLabels { fact })
            .inc_by(times);
    }

    /// The rate `number`'s sends go to Meta at.
    pub fn paced(&self, number: u64, mps: u32) {
        self.upstream_pace
            .get_or_create(&NumberLabels { number })
            .set(i64::from(mps));
    }

    /// Whether Meta refuses the access token `number` sends with.
    pub fn token_refused(&self, number: u64, refused: bool) {
        self.token_refused
            .get_or_create(&NumberLabels { number })
            .set(i64::from(refused));
    }

    /// Records a call made to Meta on a caller's behalf: which, how it was answered, how long.
    pub fn graph_took(&self, call: &'static str, answer: &'static str, took: Duration) {
        self.graph_duration
            .get_or_create(&GraphLabels { call, answer })
            .observe(took.as_secs_f64());
    }

    /// The text `/metrics` answers, with the gauges read now.
    pub fn render(&self, now: Snapshot) -> String {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // The dispatch view's counts only grow within a run: catch the counters up to them.
        for (counter, value) in [
            (&self.upstream_sent, now.dispatch.sent),
            (&self.upstream_failed, now.dispatch.failed),
            (&self.upstream_retried, now.dispatch.retried),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        self.dispatch_queued.set(to_i64(now.dispatch.queued as u64));
        self.ingest_pending.set(to_i64(now.pending as u64));
        self.forward_backlog.set(to_i64(now.forward_backlog));
        self.bodies_held.set(to_i64(now.bodies_held as u64));
        self.upstream_in_flight.set(to_i64(now.sending_now as u64));
        for (number, usage) in &now.usage {
            let labels = NumberLabels { number: *number };
            self.usage_unique_24h
                .get_or_create(&labels)
                .set(i64::from(usage.used_24h));
            match usage.limit {
                Some(limit) => {
                    self.usage_limit
                        .get_or_create(&labels)
                        .set(i64::from(limit));
                }
                None => {
                    self.usage_limit.remove(&labels);
                }
            }
        }
        for (state, count) in &now.campaigns {
            self.campaigns
                .get_or_create(&StateLabels { state })
                .set(to_i64(*count));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(
            &mut out,
            &self.registry.lock().unwrap_or_else(|e| e.into_inner()),
        );
        out
    }
}
