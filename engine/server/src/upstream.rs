//! Meta's Cloud API as wagate's upstream: each due message is POSTed as the sender wrote it,
//! paced per number by a token bucket (governor) at the number's throughput, with bounded
//! concurrency per number and overall, over pooled connections.
//!
//! Meta's answer decides what happens next: its message id (wamid) settles the message;
//! throttling (130429, 131056), Meta's transient codes, 5xx and network errors are retried by
//! the dispatcher with backoff; anything else is permanent and recorded with Meta's code.
//! Meta's word on its limits is kept, not only retried: a refused token (190) holds its
//! numbers' sends (`refused_tokens`), a refused pair (131056) is held for Meta's suggested wait
//! and a number that reached its throughput (130429) is paced slower (`meta_pacing`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::config::MetaConfig;
use super::http_client::{client, exchange, HttpClient};
use super::meta_pacing::{PairHolds, ThroughputCaps};
use super::metrics::Metrics;
use super::refused_tokens::RefusedTokens;
use wagate_durable::dispatch::{HandOver, Reconciled, Upstream, UpstreamError};
use wagate_durable::message::StoredMessage;
use wagate_rules::clock::Clock;

/// Meta's codes that mean "not now" rather than "never".
const RETRYABLE_CODES: &[u64] = &[
    1,       // unknown error
    2,       // service temporarily unavailable
    4,       // application request limit
    80_007,  // WABA rate limit
    130_429, // throughput limit
    131_000, // something went wrong
    131_016, // service unavailable
    131_056, // pair rate limit
    133_004, // server temporarily unavailable
];

/// Meta's codes that refuse wagate's credentials, not the message: the operator's to fix
/// (`meta.access_token`), after which the same message goes. Never a refusal of the message.
const CREDENTIAL_CODES: &[u64] = &[
    0,   // AuthException
    10,  // permission denied
    190, // access token invalid or expired
    200, // permission error
];

/// Messages per second for a number wagate has not been told about (Meta's default).
pub(crate) const DEFAULT_MPS: u32 = 80;

struct NumberLane {
    mps: u32,
    rate: DefaultDirectRateLimiter,
    in_flight: Semaphore,
}

impl NumberLane {
    /// Waits until the bucket lets one send through. Waits on tokio's timer: governor's own
    /// `until_ready` sleeps on futures-timer's global thread, a wake-up and a thread switch per
    /// send that cost more CPU than the send's pacing is worth.
    async fn wait_for_turn(&self) {
        while let Err(not_until) = self.rate.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(self.rate.clock()));
            tokio::time::sleep(wait).await;
        }
    }
}

pub struct MetaUpstream {
    runtime: Handle,
    clock: Arc<dyn Clock>,
    /// Tokens Meta refused (190): sends with them are held until a probe.
    refused_tokens: RefusedTokens,
    /// Pairs Meta refused for the pair rate (131056), held for Meta's suggested wait.
    pairs: PairHolds,
    /// Numbers Meta said reached their throughput (130429), capped.
    caps: ThroughputCaps,
    client: HttpClient,
    messages_url: String,
    authorization: String,
    /// Numbers whose tenant has its own Meta access token, with that token's header value.
    tenant_authorization: std::collections::HashMap<u64, String>,
    deadline: Duration,
    in_flight: Arc<Semaphore>,
    per_number: usize,
    lanes: DashMap<u64, Arc<NumberLane>>,
    metrics: Arc<Metrics>,
}

/// Evenly spaced sends, no burst: a bucket holding a second's worth would let a full bucket and
/// a second's refill through in one second, twice what Meta counts per second.
fn pace(mps: NonZeroU32) -> Quota {
    let interval = Duration::from_nanos(1_000_000_000 / u64::from(mps.get()));
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .expect("a positive interval")
        .allow_burst(NonZeroU32::MIN)
}

impl MetaUpstream {
    /// `tenant_tokens`: numbers that send with their tenant's own access token. `clock`:
    /// wagate's, for how long a token Meta refused is held.
    pub fn new(
        config: &MetaConfig,
        tenant_tokens: std::collections::HashMap<u64, String>,
        clock: Arc<dyn Clock>,
        runtime: Handle,
        metrics: Arc<Metrics>,
    ) -> MetaUpstream {
        MetaUpstream {
            runtime,
            clock,
            refused_tokens: RefusedTokens::default(),
            pairs: PairHolds::default(),
            caps: ThroughputCaps::default(),
            // Every number goes to the same host (graph.facebook.com): the pool must keep as
            // many connections as may be in flight at once, or the rest reconnect per request.
            client: client(config.max_concurrency),
            messages_url: format!(
                "{}/{}",
                config.base_url.trim_end_matches('/'),
                config.api_version
            ),
            authorization: format!("Bearer {}", config.access_token),
            tenant_authorization: tenant_tokens
                .into_iter()
                .map(|(number, token)| (number, format!("Bearer {token}")))
                .collect(),
            deadline: Duration::from_millis(config.request_timeout_ms),
            in_flight: Arc::new(Semaphore::new(config.max_concurrency)),
            per_number: config.max_concurrency_per_number,
            lanes: DashMap::new(),
            metrics,
        }
    }

    fn lane(per_number: usize, mps: u32) -> Arc<NumberLane> {
        let mps = NonZeroU32::new(mps.max(1)).expect("at least one");
        Arc::new(NumberLane {
            mps: mps.get(),
            rate: RateLimiter::direct(pace(mps)),
            in_flight: Semaphore::new(per_number),
        })
    }

    /// Paces `number` at `mps` from now on (registration, a throughput change), as far as the
    /// cap Meta's 130429 set allows.
    pub fn set_throughput(&self, number: u64, mps: u32) {
        let mps = self.caps.capped(number, mps);
        self.lanes.insert(number, Self::lane(self.per_number, mps));
        self.metrics.paced(number, mps);
    }

    /// Like [`MetaUpstream::set_throughput`], but keeps the bucket when the rate is the same.
    pub fn set_throughput_if_changed(&self, number: u64, mps: u32) {
        let capped = self.caps.capped(number, mps);
        if self
            .lanes
            .get(&number)
            .is_none_or(|lane| lane.mps != capped)
        {
            self.set_throughput(number, mps);
        }
    }

    fn lane_for(&self, number: u64) -> Arc<NumberLane> {
        if let Some(lane) = self.lanes.get(&number) {
            return lane.clone();
        }
        self.set_throughput(number, DEFAULT_MPS);
        self.lanes
            .get(&number)
            .map(|lane| lane.clone())
            .unwrap_or_else(|| Self::lane(self.per_number, DEFAULT_MPS))
    }

    /// Meta said `number` reached its throughput while this send was paced at `paced_at`.
    fn throughput_reached(&self, number: u64, paced_at: u32) {
        if let Some(slower) = self.caps.reached(number, paced_at) {
            self.set_throughput(number, slower);
            tracing::warn!(
                number,
                from_mps = paced_at,
                to_mps = slower,
                "Meta says the number's throughput was reached (130429): it is paced slower from now on"
            );
        }
    }

    /// Sends `payload` (the sender's request, as accepted) from `number` once the number's
    /// pacing and the concurrency limits let it go and the lane has marked it in flight: asks
    /// for that by `ready` (answered `true` when marked) and reports its outcome by `done`.
    async fn send_when_let(
        self: Arc<Self>,
        index: usize,
        (number, to): (u64, u64),
        payload: Bytes,
        ready: mpsc::UnboundedSender<(usize, oneshot::Sender<bool>)>,
        done: mpsc::UnboundedSender<(usize, Result<String, UpstreamError>)>,
    ) {
        let lane = self.lane_for(number);
        let _overall = self.in_flight.acquire().await;
        let _own = lane.in_flight.acquire().await;
        lane.wait_for_turn().await;
        let (go, gone) = oneshot::channel();
        if ready.send((index, go)).is_err() {
            return;
        }
        drop(ready);
        if gone.await != Ok(true) {
            return; // the disk refused the mark: not sent, still pending
        }
        let _ = done.send((index, self.post(number, to, lane.mps, payload).await));
    }

    /// One POST of a send from `number` to `to` (paced at `paced_at` a second) to Meta, now;
    /// held instead while Meta refuses its access token or its pair.
    async fn post(
        &self,
        number: u64,
        to: u64,
        paced_at: u32,
        payload: Bytes,
    ) -> Result<String, UpstreamError> {
        let authorization = self
            .tenant_authorization
            .get(&number)
            .unwrap_or(&self.authorization);
        let now = self.clock.now().unix_secs();
        if let Some(until) = self.refused_tokens.held_until(authorization, number, now) {
            self.metrics.token_refused(number, true);
            return Err(UpstreamError::Retryable(format!(
                "held: Meta refused the access token this number sends with (code 190); no \
                 send goes with it before unix time {until}, when one probes it"
            )));
        }
        if let Some(until) = self.pairs.held_until(number, to, now) {
            return Err(UpstreamError::Retryable(format!(
                "held: Meta refused this pair for its rate (code 131056); nothing goes to this \
                 person from this number before unix time {until}"
            )));
        }
        let request = Request::post(format!("{}/{number}/messages", self.messages_url))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(payload))
            // wagate's own making (a bad base URL or token in the config): fixable, so retried.
            .map_err(|e| UpstreamError::Retryable(format!("cannot build the request: {e}")))?;
        let started = std::time::Instant::now();
        let answered = exchange(&self.client, request, self.deadline).await;
        let outcome = answered
            .map_err(|e| UpstreamError::Retryable(e.to_string()))
            .and_then(|(status, body)| {
                match (status.is_success(), error_code(&body)) {
                    (false, Some(190)) => self.token_refused(authorization, number, now),
                    (false, Some(131_056)) => {
                        self.pairs.refused(number, to, now);
                    }
                    (false, Some(130_429)) => self.throughput_reached(number, paced_at),
                    _ => {}
                }
                classify(status, &body)
            });
        if outcome.is_ok() {
            self.pairs.sent(number, to);
            if let Some(numbers) = self.refused_tokens.accepted(authorization) {
                tracing::info!(
                    ?numbers,
                    "Meta accepts the access token again: the numbers' held sends go"
                );
                for number in numbers {
                    self.metrics.token_refused(number, false);
                }
            }
        }
        let label = match &outcome {
            Ok(_) => "sent",
            Err(UpstreamError::Permanent(_) | UpstreamError::Refused { .. }) => "failed",
            Err(_) => "retried",
        };
        self.metrics.upstream_took(label, started.elapsed());
        outcome
    }
}

impl MetaUpstream {
    /// Meta refused `authorization` (190) on a send from `number`: its sends are held.
    fn token_refused(&self, authorization: &str, number: u64, now: u64) {
        let until = self.refused_tokens.refused(authorization, number, now);
        self.metrics.token_refused(number, true);
        tracing::error!(
            number,
            probe_at_unix = until,
            "Meta refused the access token this number sends with (code 190, invalid or \
             expired): its sends are held, not sent, until Meta accepts it; set \
             meta.access_token (or the tenant's meta_access_token) and restart"
        );
    }
}

/// Meta's error code in an error answer's body.
fn error_code(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body).ok()?["error"]["code"].as_u64()
}

/// What Meta's answer means for the message.
pub(crate) fn classify(status: StatusCode, body: &[u8]) -> Result<String, UpstreamError> {
    if status.is_success() {
        /// Meta's success, read for its one field that matters (typed: most answers are these).
        #[derive(serde::Deserialize)]
        struct Sent {
            messages: Vec<SentId>,
        }
        #[derive(serde::Deserialize)]
        struct SentId {
            id: String,
        }
        return serde_json::from_slice::<Sent>(body)
            .ok()
            .and_then(|sent| sent.messages.into_iter().next())
            .map(|message| message.id)
            .ok_or_else(|| {
                UpstreamError::Retryable(format!("HTTP {status} without a message id"))
            });
    }
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = json["error"]["code"].as_u64();
    let what = format!(
        "HTTP {status}, code {}: {}",
        code.map_or("none".to_string(), |c| c.to_string()),
        json["error"]["message"].as_str().unwrap_or("no message")
    );
    let retry = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
        || code.is_some_and(|c| RETRYABLE_CODES.contains(&c) || CREDENTIAL_CODES.contains(&c));
    Err(match (retry, code.and_then(|c| u32::try_from(c).ok())) {
        (true, _) => UpstreamError::Retryable(what),
        // Meta's own word on the message, with its code: the state it names changes too.
        (false, Some(code)) => UpstreamError::Refused { code, reason: what },
        (false, None) => UpstreamError::Permanent(what),
    })
}

/// The dispatcher's side: a plain thread that blocks on the server's runtime.
#[derive(Clone)]
pub(crate) struct SharedMetaUpstream(pub Arc<MetaUpstream>);

impl Upstream for SharedMetaUpstream {
    fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
        let upstream = self.0.clone();
        let (number, to) = (message.number.0, message.to.digits());
        let payload = Bytes::copy_from_slice(&message.payload);
        self.0.runtime.block_on(async move {
            let lane = upstream.lane_for(number);
            let _overall = upstream.in_flight.acquire().await;
            let _own = lane.in_flight.acquire().await;
            lane.wait_for_turn().await;
            upstream.post(number, to, lane.mps, payload).await
        })
    }

    /// Every message waits for its number's pacing and a concurrency slot on the runtime;
    /// those that get through together are marked in flight with one synced write and only
    /// then go out, so a crash leaves in flight only what was under way at Meta.
    fn send_all(&self, messages: &[StoredMessage], hand_over: &mut dyn HandOver) {
        let upstream = self.0.clone();
        // Only the pair and the payload travel: copying whole records cost a second copy
        // of every payload.
        let messages: Vec<((u64, u64), Bytes)> = messages
            .iter()
            .map(|m| {
                (
                    (m.number.0, m.to.digits()),
                    Bytes::copy_from_slice(&m.payload),
                )
            })
            .collect();
        self.0.runtime.block_on(async move {
            let (ready, mut readies) = mpsc::unbounded_channel();
            let (done, mut dones) = mpsc::unbounded_channel();
            for (index, (pair, payload)) in messages.into_iter().enumerate() {
                tokio::spawn(upstream.clone().send_when_let(
                    index,
                    pair,
                    payload,
                    ready.clone(),
                    done.clone(),
                ));
            }
            drop((ready, done));
            let (mut readies_open, mut dones_open) = (true, true);
            while readies_open || dones_open {
                tokio::select! {
                    biased;
                    came = dones.recv(), if dones_open => match came {
                        Some(first) => {
                            let mut burst = vec![first];
                            while let Ok(more) = dones.try_recv() {
                                burst.push(more);
                            }
                            hand_over.outcomes(burst);
                        }
                        None => dones_open = false,
                    },
                    came = readies.recv(), if readies_open => match came {
                        Some(first) => {
                            let mut group = vec![first];
                            while let Ok(more) = readies.try_recv() {
                                group.push(more);
                            }
                            let indices: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
                            let marked = hand_over.going_out(&indices);
                            let mut vanished = Vec::new();
                            for (index, go) in group {
                                if go.send(marked).is_err() && marked {
                                    // The task ended (a stop) before it could send: marked but
                                    // surely not sent, so pending again.
                                    vanished.push((index, Err(UpstreamError::Retryable(
                                        "stopped before it went out".into(),
                                    ))));
                                }
                            }
                            if !vanished.is_empty() {
                                hand_over.outcomes(vanished);
                            }
                        }
                        None => readies_open = false,
                    },
                }
            }
            // A send task cut off after it was let go (the runtime stopping) may have sent its
            // request already: it has no outcome here, and the lane keeps it in flight (see
            // `HandOver`).
        })
    }

    /// Meta cannot be asked whether it has a message; one handed over before a stop stays in
    /// flight (never sent twice) until an operator settles it.
    fn reconcile(&self, _message: &StoredMessage) -> Reconciled {
        Reconciled::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_metas_documentation_says() {
        let ok = br#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.X"}]}"#;
        assert_eq!(classify(StatusCode::OK, ok), Ok("wamid.X".to_string()));
        let error = |code: u32| format!(r#"{{"error":{{"code":{code},"message":"m"}}}}"#);
        for code in [130_429, 131_056, 131_000] {
            assert!(matches!(
                classify(StatusCode::BAD_REQUEST, error(code).as_bytes()),
                Err(UpstreamError::Retryable(_))
            ));
        }
        // Meta refused wagate's credentials, not the message: retried once they are fixed.
        for code in [190, 0, 10, 200] {
            assert!(matches!(
                classify(StatusCode::BAD_REQUEST, error(code).as_bytes()),
                Err(UpstreamError::Retryable(_))
            ));
        }
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, b"{}"),
            Err(UpstreamError::Retryable(_))
        ));
        for code in [
            131_047, 132_001, 100, 131_031, 368, 131_048, 131_049, 132_015,
        ] {
            assert!(matches!(
                classify(StatusCode::BAD_REQUEST, error(code).as_bytes()),
                Err(UpstreamError::Refused { code: said, .. }) if said == code
            ));
        }
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, b"{}"),
            Err(UpstreamError::Permanent(_))
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, b"<html>"),
            Err(UpstreamError::Retryable(_))
        ));
    }

    #[test]
    fn a_number_never_gets_more_than_its_rate_in_any_second() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter =
            RateLimiter::direct_with_clock(pace(NonZeroU32::new(100).unwrap()), clock.clone());
        // Someone asks every millisecond for two seconds, starting with a full bucket.
        let mut granted = Vec::new();
        for millisecond in 0..2_000u64 {
            while limiter.check().is_ok() {
                granted.push(millisecond);
            }
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(granted.len(), 200);
        for start in 0..1_000 {
            let in_window = granted
                .iter()
                .filter(|&&t| t >= start && t < start + 1_000)
                .count();
            assert!(
                in_window <= 100,
                "{in_window} sends in the second from {start} ms"
            );
        }
    }
}
