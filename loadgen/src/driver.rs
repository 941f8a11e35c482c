//! The load driver: workers sending over a session each (HTTP single or bulk, gRPC unary
//! or streamed, or the Redis baseline), each run bounded in messages and in time, counted in a
//! tally of answers, messages per second and hdrhistogram latency per second.
//!
//! Closed loop: N requests in flight, each sent when one returns. Open loop (`rate`): request
//! i is due at start + i / rate whatever the server does, and its latency counts from that
//! moment, so a stalled server shows its queueing instead of slowing the driver down (N is then
//! only the bound on requests in flight). The open loop's requests are released by a
//! `Pacer` thread at their intended times; how late each left is reported as `send_lag_us`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::pacer::Pacer;
use crate::session::{Exchanged, Session};
use crate::traffic::{recipient, TrafficModel};

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// wagate's base URL (its gRPC address for the gRPC transports); only loopback addresses
    /// are accepted.
    pub target: String,
    pub token: String,
    /// What each send is: recipients, numbers, the mix.
    pub model: TrafficModel,
    /// mock-meta's base URL: where the model's repliers write before the run.
    pub mock: Option<String>,
    pub concurrency: usize,
    /// Messages to send at most.
    pub messages: u64,
    pub max_duration: Duration,
    /// Messages per request: 1 uses the single endpoint, more the bulk endpoint.
    pub batch: usize,
    /// Open loop at this many requests per second; closed loop when absent.
    pub rate: Option<f64>,
    /// Bursts in the open loop: periods at a multiple of the rate.
    pub burst: Option<Burst>,
    pub transport: Transport,
    /// HTTP/2 connections the workers share (the other transports open one per worker).
    pub connections: usize,
    /// The number's throughput and tier, which the Redis baseline checks against (wagate
    /// knows its numbers).
    pub mps: u32,
    pub tier_limit: u32,
}

/// In every period of `every_secs`, the first `secs` run at `factor` times the open loop's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub every_secs: f64,
    pub secs: f64,
    pub factor: f64,
}

/// When the open loop's request `k` is due, from the start of the run.
pub fn intended_offset(k: u64, rate: f64, burst: Option<Burst>) -> Duration {
    let Some(Burst {
        every_secs,
        secs,
        factor,
    }) = burst.filter(|b| b.every_secs > 0.0 && b.secs > 0.0 && b.secs < b.every_secs)
    else {
        return Duration::from_secs_f64(k as f64 / rate);
    };
    let in_burst = rate * factor * secs;
    let per_period = in_burst + rate * (every_secs - secs);
    let period = (k as f64 / per_period).floor();
    let within = k as f64 - period * per_period;
    let offset = if within < in_burst {
        within / (rate * factor)
    } else {
        secs + (within - in_burst) / rate
    };
    Duration::from_secs_f64(period * every_secs + offset)
}

/// How the driver reaches wagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Meta's single-message endpoint (batch 1) or wagate's bulk endpoint.
    Http,
    /// The same over HTTP/2 (cleartext, prior knowledge): the workers share `connections`
    /// connections, each request a stream.
    Http2,
    /// `Messaging.Send`, one message per call.
    GrpcUnary,
    /// `Messaging.SendStream`, a stream per worker, `batch` messages per exchange.
    GrpcStream,
    /// The peer baseline: Redis with one Lua check per message, `batch` pipelined per exchange
    /// (the target is Redis's address).
    Redis,
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(text: &str) -> Result<Transport, String> {
        match text {
            "http" => Ok(Transport::Http),
            "http2" => Ok(Transport::Http2),
            "grpc" => Ok(Transport::GrpcUnary),
            "grpc-stream" => Ok(Transport::GrpcStream),
            "redis" => Ok(Transport::Redis),
            other => Err(format!(
                "{other}: expected http, http2, grpc, grpc-stream or redis"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub messages: u64,
    pub accepted: u64,
    pub other: u64,
    pub seconds: f64,
    /// Request latency in microseconds (from the intended send time in open loop).
    pub latency: Histogram<u64>,
    /// Open loop: how late each request left the driver after its intended send time
    /// (microseconds), a part of its latency that is the driver's (its timer, its own CPU
    /// share) or a busy worker's, not the server's.
    pub send_lag: Histogram<u64>,
    /// Messages answered in each second of the run.
    pub per_second: Vec<u64>,
    /// The 99th percentile latency (µs) of the requests answered in each second.
    pub p99_per_second: Vec<u64>,
    pub open_loop_rate: Option<f64>,
    /// The first answer (or error) that was not an acceptance, to say what went wrong.
    pub first_not_accepted: Option<String>,
}

impl Summary {
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    pub fn to_json(&self) -> Value {
        let q = |p: f64| self.latency.value_at_quantile(p);
        json!({
            "messages": self.messages,
            "accepted": self.accepted,
            "other": self.other,
            "seconds": self.seconds,
            "messages_per_second": self.messages_per_second(),
            "latency_us": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
                            "max": self.latency.max() },
            "open_loop_rate": self.open_loop_rate,
            "send_lag_us": { "p50": self.send_lag.value_at_quantile(0.5),
                             "p99": self.send_lag.value_at_quantile(0.99),
                             "max": self.send_lag.max() },
            "per_second": self.per_second,
            "p99_us_per_second": self.p99_per_second,
            "first_not_accepted": self.first_not_accepted,
        })
    }
}

/// A target URL's `host:port` (what follows the scheme, up to the path).
pub fn address_of(target: &str) -> &str {
    let after_scheme = target.split("://").last().unwrap_or_default();
    after_scheme.split('/').next().unwrap_or_default()
}

/// A TCP connection to `address` (`host:port`) for requests and answers that each fit in a
/// few segments: Nagle's delay off, so none waits for the previous one's acknowledgement.
pub(crate) async fn connect(address: &str, what: &str) -> Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {what} at {address}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Refuses any target that is not on this machine: load runs stay on loopback.
pub fn check_loopback(target: &str) -> Result<()> {
    let host = address_of(target).split(':').next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost") {
        bail!("load runs only go to loopback; {target} is not");
    }
    Ok(())
}

/// Makes the model's repliers write to their numbers through mock-meta, and waits until
/// mock-meta has delivered every inbound webhook (wagate answers one only once it applied it).
async fn open_windows(config: &DriverConfig) -> Result<()> {
    let model = &config.model;
    if model.repliers == 0 || model.reply_share <= 0.0 {
        return Ok(());
    }
    let Some(mock) = &config.mock else {
        bail!("replies need --mock (mock-meta's URL) to make the repliers write first");
    };
    check_loopback(mock)?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let post = |body: String| {
        Request::post(format!("{mock}/mock/inbound"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
    };
    for rank in 0..model.repliers {
        let from = recipient(rank);
        let body = json!({ "phone_number_id": model.number_of(rank).to_string(),
                           "from": from.trim_start_matches('+'), "text": "hello" });
        let answer = client.request(post(body.to_string())?).await?;
        if !answer.status().is_success() {
            bail!("mock-meta refused an inbound message: {}", answer.status());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = client
            .get(format!("{mock}/mock/report").parse()?)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        let report: Value = serde_json::from_slice(&answer)?;
        if report["webhooks_pending"] == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("mock-meta did not deliver the repliers' messages: {report}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the workers count together: answers, and per second of the run the messages answered
/// and the latency of their requests (the whole run's latency is the seconds' merged).
struct Tally {
    accepted: AtomicU64,
    other: AtomicU64,
    first_not_accepted: Mutex<Option<String>>,
    seconds: Vec<(AtomicU64, Mutex<Histogram<u64>>)>,
    send_lag: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new(max_duration: Duration) -> Tally {
        Tally {
            accepted: AtomicU64::new(0),
            other: AtomicU64::new(0),
            first_not_accepted: Mutex::new(None),
            seconds: (0..=max_duration.as_secs() + 1)
                .map(|_| {
                    (
                        AtomicU64::new(0),
                        Mutex::new(Histogram::new(3).expect("a histogram")),
                    )
                })
                .collect(),
            send_lag: Mutex::new(Histogram::new(3).expect("a histogram")),
        }
    }

    /// How late an open-loop request left after its intended send time.
    fn record_lag(&self, lag_us: u64) {
        let _ = self.send_lag.lock().expect("send lag").record(lag_us);
    }

    /// One exchange of `count` messages, answered `second`s into the run after `took_us`
    /// (answers after the last second count in it).
    fn record(&self, second: usize, took_us: u64, count: u64, exchanged: Exchanged) {
        let accepted = exchanged.accepted.min(count);
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.other.fetch_add(count - accepted, Ordering::Relaxed);
        if let Some(refusal) = exchanged.refusal {
            self.first_not_accepted
                .lock()
                .expect("sample")
                .get_or_insert(refusal);
        }
        let (messages, latency) = &self.seconds[second.min(self.seconds.len() - 1)];
        messages.fetch_add(count, Ordering::Relaxed);
        let _ = latency.lock().expect("latency").record(took_us);
    }

    fn answered(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed) + self.other.load(Ordering::Relaxed)
    }

    fn summary(&self, seconds: f64, open_loop_rate: Option<f64>) -> Summary {
        let mut per_second: Vec<u64> = self
            .seconds
            .iter()
            .map(|(messages, _)| messages.load(Ordering::Relaxed))
            .collect();
        while per_second.last() == Some(&0) {
            per_second.pop();
        }
        let mut latency = Histogram::<u64>::new(3).expect("a histogram");
        let mut p99_per_second = Vec::with_capacity(per_second.len());
        for (i, (_, second)) in self.seconds.iter().enumerate() {
            let second = second.lock().expect("latency");
            latency.add(&*second).expect("same bounds");
            if i < per_second.len() {
                p99_per_second.push(second.value_at_quantile(0.99));
            }
        }
        let (accepted, other) = (
            self.accepted.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        );
        Summary {
            messages: accepted + other,
            accepted,
            other,
            seconds,
            latency,
            send_lag: self.send_lag.lock().expect("send lag").clone(),
            per_second,
            p99_per_second,
            open_loop_rate,
            first_not_accepted: self.first_not_accepted.lock().expect("sample").clone(),
        }
    }
}

pub async fn run(config: DriverConfig) -> Result<Summary> {
    check_loopback(&config.target)?;
    if config.transport == Transport::GrpcUnary && config.batch != 1 {
        bail!("unary gRPC sends one message per call: --batch 1");
    }
    let next = Arc::new(AtomicU64::new(0));
    let config = Arc::new(config);
    open_windows(&config).await?;
    let mut sessions: Vec<Session> = Vec::with_capacity(config.concurrency);
    let connections = config.connections.max(1);
    for worker in 0..config.concurrency {
        let shared = match config.transport {
            Transport::Http2 if worker >= connections => sessions[worker % connections].shared(),
            _ => None,
        };
        let session = match shared {
            Some(session) => session,
            None => Session::open(&config).await?,
        };
        sessions.push(session);
    }
    let tally = Arc::new(Tally::new(config.max_duration));
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let pacer = config.rate.map(|rate| {
        let burst = config.burst;
        let requests = config.messages.div_ceil(config.batch as u64);
        Arc::new(Pacer::start(started, deadline, requests, move |k| {
            intended_offset(k, rate, burst)
        }))
    });
    let mut workers = Vec::new();
    for mut session in sessions {
        let (next, config, tally) = (next.clone(), config.clone(), tally.clone());
        let pacer = pacer.clone();
        workers.push(tokio::spawn(async move {
            let batch = config.batch as u64;
            while Instant::now() < deadline {
                let (first, sent) = match (&pacer, config.rate) {
                    (Some(pacer), Some(rate)) => {
                        let Some(request) = pacer.turn().await else {
                            break;
                        };
                        let intended = started + intended_offset(request, rate, config.burst);
                        tally.record_lag(intended.elapsed().as_micros() as u64);
                        (request * batch, intended)
                    }
                    _ => (next.fetch_add(batch, Ordering::Relaxed), Instant::now()),
                };
                if first >= config.messages {
                    break;
                }
                let count = (config.messages - first).min(batch);
                let exchanged = session
                    .exchange(&config, first, count)
                    .await
                    .unwrap_or_else(|error| Exchanged {
                        accepted: 0,
                        refusal: Some(error.to_string()),
                    });
                let took = sent.elapsed().as_micros() as u64;
                let second = started.elapsed().as_secs() as usize;
                tally.record(second, took, count, exchanged);
            }
        }));
    }
    let progress = std::io::stderr().is_terminal().then(|| {
        let (tally, total) = (tally.clone(), config.messages);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let done = tally.answered();
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                let filled = (done * 40 / total.max(1)) as usize;
                eprint!(
                    "\r[{:<40}] {done}/{total} messages  {:.0} msg/s  {:.0} s",
                    "#".repeat(filled.min(40)),
                    done as f64 / seconds,
                    seconds
                );
            }
        })
    });
    for worker in workers {
        worker.await?;
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    Ok(tally.summary(started.elapsed().as_secs_f64(), config.rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_loop_is_evenly_spaced_and_bursts_run_faster_for_their_seconds() {
        let at = |k, burst| intended_offset(k, 100.0, burst).as_secs_f64();
        assert!((at(250, None) - 2.5).abs() < 1e-9);
        // Every 10 s, 2 s at five times the rate: 1,000 requests, then 800 in the other 8 s.
        let burst = Some(Burst {
            every_secs: 10.0,
            secs: 2.0,
            factor: 5.0,
        });
        assert!((at(500, burst) - 1.0).abs() < 1e-9);
        assert!((at(1_000, burst) - 2.0).abs() < 1e-9);
        assert!((at(1_400, burst) - 6.0).abs() < 1e-9);
        assert!((at(1_800, burst) - 10.0).abs() < 1e-9);
        assert!((at(2_300, burst) - 11.0).abs() < 1e-9);
    }

    #[test]
    fn only_loopback_targets_are_driven() {
        assert!(super::check_loopback("http://127.0.0.1:8080").is_ok());
        assert!(super::check_loopback("http://localhost:8080").is_ok());
        assert!(super::check_loopback("http://graph.facebook.com").is_err());
        assert!(super::check_loopback("http://10.0.0.1:8080").is_err());
        assert!(super::check_loopback("redis://127.0.0.1:6379").is_ok());
        assert!(super::check_loopback("redis://10.0.0.2:6379").is_err());
    }
}
