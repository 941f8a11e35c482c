//! Webhooks forwarded to tenants: statuses and inbound messages of a tenant's numbers go to
//! its callback URL, signed like Meta signs them (`X-Hub-Signature-256`, HMAC-SHA256 of the
//! body with the tenant's secret), so the tenant's existing webhook code verifies them.
//!
//! Each forward is written to the durable forward queue (`wagate_durable::forward_queue`:
//! synced, with the record that dedupes Meta's retries of it) before Meta gets its 200, and deleted only after the tenant
//! answered 2xx: delivery is at least once, retried with backoff, kept across restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::Request;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use super::config::TenantConfig;
use super::http_client::{client, exchange, HttpClient};
use super::metrics::{bump, Metrics};
use super::own_status::body_to_deliver;
use wagate_cloud_api::webhooks::signature::sign;
pub(crate) use wagate_durable::forward_queue::Forward;
use wagate_durable::forward_queue::QueuedForward;
use wagate_durable::log_limit::LogLimit;
use wagate_durable::{SubmitError, Wagate};
use wagate_store::StoreError;

struct Callback {
    url: String,
    secret: String,
}

struct Waiting {
    attempts: u32,
    next: Instant,
}

pub struct Forwarder {
    wagate: Arc<Wagate>,
    client: HttpClient,
    callbacks: HashMap<String, Callback>,
    inbox: Arc<ForwardInbox>,
    metrics: Arc<Metrics>,
    deadline: Duration,
}

/// Where forwards come into the queue: the next sequence number, how many wait, and the
/// delivery loop's wake-up. Shared with what writes forwards in writes of its own (a queued
/// send's news, with its decision).
pub(crate) struct ForwardInbox {
    next_seq: AtomicU64,
    backlog: AtomicU64,
    wake: Notify,
}

impl ForwardInbox {
    /// A sequence number for one forward.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// `count` forwards were stored: deliver them.
    pub(crate) fn added(&self, count: usize) {
        self.backlog.fetch_add(count as u64, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// Records read per delivery round, all tenants together.
const ROUND: usize = 1_024;
/// Records read per tenant in a round: the rest of the round goes to the next tenants in turn.
const PER_TENANT: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A stable identity for a piece of a webhook (its canonical JSON).
pub(crate) fn identity_of(part: &[u8]) -> String {
    let digest = Sha256::digest(part);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("webhook:fwd:{hex}")
}

impl Forwarder {
    pub fn open(
        wagate: Arc<Wagate>,
        tenants: &[TenantConfig],
        metrics: Arc<Metrics>,
        deadline: Duration,
    ) -> Result<Forwarder, StoreError> {
        let tail = wagate.forward_queue_tail()?;
        let callbacks = tenants
            .iter()
            .filter_map(|t| {
                let url = t.callback_url.clone()?;
                Some((
                    t.name.clone(),
                    Callback {
                        url,
                        secret: t.callback_secret.clone(),
                    },
                ))
            })
            .collect();
        Ok(Forwarder {
            wagate,
            client: client(8),
            callbacks,
            inbox: Arc::new(ForwardInbox {
                next_seq: AtomicU64::new(tail.last_seq.map_or(0, |l| l + 1)),
                backlog: AtomicU64::new(tail.waiting),
                wake: Notify::new(),
            }),
            metrics,
            deadline,
        })
    }

    pub fn has_callback(&self, tenant: &str) -> bool {
        self.callbacks.contains_key(tenant)
    }

    /// Forwards waiting for their tenant.
    pub fn backlog(&self) -> u64 {
        self.inbox.backlog.load(Ordering::Relaxed)
    }

    pub(crate) fn inbox(&self) -> Arc<ForwardInbox> {
        self.inbox.clone()
    }

    /// Stores `forwards` not seen before, with the records that make them seen, synced.
    pub fn enqueue(&self, forwards: Vec<Forward>) -> Result<usize, SubmitError> {
        let added = self
            .wagate
            .enqueue_forwards(forwards, &self.inbox.next_seq)?;
        if added > 0 {
            self.inbox.added(added);
        }
        Ok(added)
    }

    /// Delivers one forward; why not, when it was not.
    async fn deliver(&self, tenant: &str, body: Vec<u8>) -> Result<(), String> {
        let Some(callback) = self.callbacks.get(tenant) else {
            // The tenant's callback was removed from the config: nothing to deliver to.
            return Ok(());
        };
        let body = body_to_deliver(body);
        let signature = sign(callback.secret.as_bytes(), &body);
        let request = Request::post(&callback.url)
            .header(CONTENT_TYPE, "application/json")
            .header("x-hub-signature-256", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        match exchange(&self.client, request, self.deadline).await {
            Ok((status, _)) if status.is_success() => Ok(()),
            Ok((status, _)) => Err(format!("the callback answered {status}")),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Reads this round's forwards: tenants in turn from `turn`, each not parked its oldest
    /// [`PER_TENANT`], [`ROUND`] in all. Returns each read tenant's head, and how many tenants
    /// were passed (read or parked), for the next round's turn.
    fn read_round(
        &self,
        turn: usize,
        parked: &HashMap<String, Instant>,
        now: Instant,
    ) -> Result<(Vec<TenantHead>, usize), StoreError> {
        let tenants = self.wagate.forward_tenants()?;
        let count = tenants.len();
        let mut heads = Vec::new();
        let (mut read, mut passed) = (0, 0);
        for tenant in tenants
            .into_iter()
            .cycle()
            .skip(turn % count.max(1))
            .take(count)
        {
            if read >= ROUND {
                break;
            }
            passed += 1;
            if parked.get(&tenant).is_some_and(|until| *until > now) {
                continue;
            }
            let limit = PER_TENANT.min(ROUND - read);
            let records = self.wagate.oldest_forwards_of(&tenant, limit)?;
            read += records.len();
            heads.push(TenantHead {
                full: records.len() == limit,
                tenant,
                records,
            });
        }
        Ok((heads, passed))
    }

    /// Delivers until `stop` turns true; what is not delivered by then stays on disk.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut waiting: HashMap<u64, Waiting> = HashMap::new();
        // Tenants whose oldest forwards all wait out their backoff, until the first of them is
        // due: not read again before (a callback down with a backlog would otherwise be
        // re-read on every wake-up, and stand in front of every other tenant's forwards).
        let mut parked: HashMap<String, Instant> = HashMap::new();
        let mut turn = 0usize;
        let (mut failures, mut store_failures) = (LogLimit::default(), LogLimit::default());
        while !*stop.borrow() {
            let now = Instant::now();
            parked.retain(|_, until| *until > now);
            let forwarder = self.clone();
            let parked_now = parked.clone();
            let read =
                tokio::task::spawn_blocking(move || forwarder.read_round(turn, &parked_now, now))
                    .await;
            let heads = match read {
                Ok(Ok((heads, passed))) => {
                    turn = turn.wrapping_add(passed);
                    heads
                }
                Ok(Err(error)) => {
                    if let Some(times) = store_failures.admit() {
                        tracing::error!(%error, times, "reading the forwards to deliver failed");
                    }
                    Vec::new()
                }
                Err(error) => {
                    tracing::error!(%error, "reading the forwards to deliver panicked");
                    Vec::new()
                }
            };
            let is_due = |seq: &u64| waiting.get(seq).is_none_or(|w| w.next <= now);
            let mut due = Vec::new();
            for head in heads {
                let (ready, held): (Vec<_>, Vec<_>) =
                    head.records.into_iter().partition(|q| is_due(&q.seq));
                if head.full && ready.is_empty() {
                    // Its full head waits: what is added comes after it, out of reach until
                    // the first of the head is due.
                    let until = held
                        .iter()
                        .filter_map(|q| waiting.get(&q.seq))
                        .map(|w| w.next)
                        .min()
                        .unwrap_or(now);
                    parked.insert(head.tenant, until);
                }
                due.extend(ready);
            }
            let mut delivered: Vec<(String, u64)> = Vec::new();
            let mut tasks = tokio::task::JoinSet::new();
            for QueuedForward { seq, tenant, body } in due {
                let forwarder = self.clone();
                let span = tracing::info_span!("forward", %tenant, seq);
                tasks.spawn(
                    async move {
                        let delivered = forwarder.deliver(&tenant, body).await;
                        (seq, tenant, delivered)
                    }
                    .instrument(span),
                );
            }
            while let Some(Ok((seq, tenant, done))) = tasks.join_next().await {
                if let Err(reason) = done {
                    bump(&self.metrics.forward_failures);
                    if let Some(failures) = failures.admit() {
                        tracing::warn!(
                            %tenant,
                            %reason,
                            failures,
                            "forwarding to a tenant's callback failed: kept on disk and retried"
                        );
                    }
                    let entry = waiting.entry(seq).or_insert(Waiting {
                        attempts: 0,
                        next: now,
                    });
                    entry.attempts += 1;
                    let backoff = Duration::from_millis(250) * (1 << entry.attempts.min(11));
                    entry.next = Instant::now() + backoff.min(MAX_BACKOFF);
                } else {
                    waiting.remove(&seq);
                    delivered.push((tenant, seq));
                    bump(&self.metrics.forwarded);
                }
            }
            if !delivered.is_empty() {
                let done = delivered.len() as u64;
                let keys = delivered
                    .iter()
                    .map(|(tenant, seq)| (tenant.as_str(), *seq));
                match self.wagate.forget_forwards(keys) {
                    Ok(()) => {
                        self.inbox.backlog.fetch_sub(done, Ordering::Relaxed);
                    }
                    Err(error) => {
                        if let Some(times) = store_failures.admit() {
                            tracing::error!(
                                %error,
                                times,
                                "recording delivered forwards failed: they will be delivered again"
                            );
                        }
                    }
                }
                continue;
            }
            let pause = waiting
                .values()
                .map(|w| w.next.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            // Nothing delivered: what was read waits out its backoff. A wake-up (forwards
            // added) reads again, parked tenants aside; the first backoff or a stop ends the
            // wait too.
            tokio::select! {
                _ = self.inbox.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// One tenant's oldest forwards, read in one round; `full` when there may be more behind.
struct TenantHead {
    tenant: String,
    records: Vec<QueuedForward>,
    full: bool,
}
