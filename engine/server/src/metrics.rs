//! Counters for `/metrics` (Prometheus text format): what came in, what the rules decided,
//! what went out.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use wagate_durable::dispatch::DispatchView;

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub queued: AtomicU64,
    pub deferred: AtomicU64,
    pub refused: AtomicU64,
    pub invalid: AtomicU64,
    pub unauthorized: AtomicU64,
    pub overloaded: AtomicU64,
    pub replayed: AtomicU64,
    pub released: AtomicU64,
    pub webhooks_applied: AtomicU64,
    pub webhooks_repeated: AtomicU64,
    pub webhooks_ignored: AtomicU64,
    pub webhooks_bad_signature: AtomicU64,
    pub forwarded: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_timed_out: AtomicU64,
    pub bodies_refused: AtomicU64,
    pub forward_failures: AtomicU64,
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn render(
        &self,
        dispatch: DispatchView,
        pending: usize,
        forward_backlog: u64,
        sending_now: usize,
        bodies_held: usize,
    ) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP wagate_{name} {help}");
            let _ = writeln!(out, "# TYPE wagate_{name} counter");
            let _ = writeln!(out, "wagate_{name} {value}");
        };
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "http_requests_total",
            "Send, bulk, webhook and admin requests.",
            read(&self.requests),
        );
        counter(
            "messages_accepted_total",
            "Sends accepted and made durable.",
            read(&self.accepted),
        );
        counter(
            "messages_queued_total",
            "Sends queued until the rules allow them.",
            read(&self.queued),
        );
        counter(
            "messages_deferred_total",
            "Sends answered with a retry hint.",
            read(&self.deferred),
        );
        counter(
            "messages_refused_total",
            "Sends refused by a rule.",
            read(&self.refused),
        );
        counter(
            "requests_invalid_total",
            "Malformed or unknown requests.",
            read(&self.invalid),
        );
        counter(
            "requests_unauthorized_total",
            "Requests without a valid token.",
            read(&self.unauthorized),
        );
        counter(
            "requests_overloaded_total",
            "Requests answered 503 (queues full).",
            read(&self.overloaded),
        );
        counter(
            "idempotent_replays_total",
            "Retries answered from the idempotency record.",
            read(&self.replayed),
        );
        counter(
            "messages_released_total",
            "Queued sends decided again when due.",
            read(&self.released),
        );
        counter(
            "webhook_events_applied_total",
            "Meta webhook events applied.",
            read(&self.webhooks_applied),
        );
        counter(
            "webhook_events_repeated_total",
            "Meta webhook events seen before.",
            read(&self.webhooks_repeated),
        );
        counter(
            "webhook_events_ignored_total",
            "Meta webhook events not acted on (not understood, or naming nothing known); each is logged.",
            read(&self.webhooks_ignored),
        );
        counter(
            "webhook_bad_signatures_total",
            "Meta webhooks refused for their signature.",
            read(&self.webhooks_bad_signature),
        );
        counter(
            "connections_refused_total",
            "HTTP connections answered 503 and closed: http.max_connections were open.",
            read(&self.connections_refused),
        );
        counter(
            "connections_timed_out_total",
            "HTTP connections closed for a head, body or answer not moved in time.",
            read(&self.connections_timed_out),
        );
        counter(
            "request_bodies_refused_total",
            "Requests answered 503 because the bodies being read held http.max_body_bytes_held.",
            read(&self.bodies_refused),
        );
        counter(
            "forwarded_total",
            "Webhooks delivered to tenants.",
            read(&self.forwarded),
        );
        counter(
            "forward_failures_total",
            "Failed deliveries to tenants (retried).",
            read(&self.forward_failures),
        );
        counter(
            "upstream_sent_total",
            "Messages the upstream took.",
            dispatch.sent,
        );
        counter(
            "upstream_failed_total",
            "Messages the upstream refused for good.",
            dispatch.failed,
        );
        counter(
            "upstream_retried_total",
            "Upstream attempts to be retried.",
            dispatch.retried,
        );
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP wagate_{name} {help}");
            let _ = writeln!(out, "# TYPE wagate_{name} gauge");
            let _ = writeln!(out, "wagate_{name} {value}");
        };
        gauge(
            "dispatch_queued",
            "Accepted messages waiting for their slot or a retry.",
            dispatch.queued as u64,
        );
        gauge(
            "ingest_pending",
            "Sends admitted and not yet answered.",
            pending as u64,
        );
        gauge(
            "forward_backlog",
            "Webhooks waiting to be delivered to tenants.",
            forward_backlog,
        );
        gauge(
            "request_body_bytes_held",
            "Bytes of request bodies held by unfinished requests (bounded by http.max_body_bytes_held).",
            bodies_held as u64,
        );
        gauge(
            "upstream_in_flight",
            "Messages handed to Meta by this run and not yet settled.",
            sending_now as u64,
        );
        out
    }
}
