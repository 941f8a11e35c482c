//! The HTTP driver against wagate's single-message endpoint or its bulk endpoint, each run
//! bounded in requests and in time, latency in an hdrhistogram.
//!
//! Closed loop: N requests in flight, each sent when one returns. Open loop (`rate`): request
//! i is due at start + i / rate whatever the server does, and its latency counts from that
//! moment, so a stalled server shows its queueing instead of slowing the driver down (N is then
//! only the bound on requests in flight).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use wagate::server::grpc::proto::messaging_client::MessagingClient;
use wagate::server::grpc::proto::{SendRequest, SendResult};

use crate::redis_baseline::{load_script, queue_check, Check, Reply as RedisReply, Resp};
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
            "grpc" => Ok(Transport::GrpcUnary),
            "grpc-stream" => Ok(Transport::GrpcStream),
            "redis" => Ok(Transport::Redis),
            other => Err(format!(
                "{other}: expected http, grpc, grpc-stream or redis"
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
    /// Messages answered in each second of the run.
    pub per_second: Vec<u64>,
    /// The 99th percentile latency (µs) of the requests answered in each second.
    pub p99_per_second: Vec<u64>,
    pub open_loop_rate: Option<f64>,
    /// The first answer (or error) that was not an acceptance, to say what went wrong.
    pub first_not_accepted: Option<String>,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        let q = |p: f64| self.latency.value_at_quantile(p);
        json!({
            "messages": self.messages,
            "accepted": self.accepted,
            "other": self.other,
            "seconds": self.seconds,
            "messages_per_second": self.messages as f64 / self.seconds,
            "latency_us": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
                            "max": self.latency.max() },
            "open_loop_rate": self.open_loop_rate,
            "per_second": self.per_second,
            "p99_us_per_second": self.p99_per_second,
            "first_not_accepted": self.first_not_accepted,
        })
    }
}

/// Refuses any target that is not on this machine: load runs stay on loopback.
pub fn check_loopback(target: &str) -> Result<()> {
    let host = target
        .split("://")
        .last()
        .unwrap_or_default()
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost") {
        bail!("load runs only go to loopback; {target} is not");
    }
    Ok(())
}

/// One worker's connection to wagate, by transport.
enum Session {
    Http(Client<HttpConnector, Full<Bytes>>),
    GrpcUnary(MessagingClient<Channel>),
    /// A stream of its own: requests go out on `requests`, results come back in order.
    GrpcStream {
        requests: mpsc::Sender<SendRequest>,
        results: tonic::Streaming<SendResult>,
    },
    Redis {
        resp: Resp,
        script: String,
    },
}

/// What one exchange (a request, or a batch on a stream) brought back.
struct Exchanged {
    accepted: u64,
    /// What the first send not accepted got, if one was not.
    refusal: Option<String>,
}

impl Session {
    async fn open(
        config: &DriverConfig,
        http: &Client<HttpConnector, Full<Bytes>>,
    ) -> Result<Session> {
        Ok(match config.transport {
            Transport::Http => Session::Http(http.clone()),
            Transport::GrpcUnary => Session::GrpcUnary(grpc_client(config).await?),
            Transport::GrpcStream => {
                let (requests, outgoing) = mpsc::channel(config.batch.max(1));
                let mut call = tonic::Request::new(ReceiverStream::new(outgoing));
                authorise(&mut call, config)?;
                let results = grpc_client(config)
                    .await?
                    .send_stream(call)
                    .await?
                    .into_inner();
                Session::GrpcStream { requests, results }
            }
            Transport::Redis => {
                let address = config.target.split("://").last().unwrap_or_default();
                let mut resp = Resp::connect(address).await?;
                let script = load_script(&mut resp).await?;
                Session::Redis { resp, script }
            }
        })
    }

    async fn exchange(
        &mut self,
        config: &DriverConfig,
        first: u64,
        count: u64,
    ) -> Result<Exchanged> {
        match self {
            Session::Http(client) => http_exchange(client, config, first, count).await,
            Session::GrpcUnary(client) => {
                let mut call = tonic::Request::new(grpc_request(config, first));
                authorise(&mut call, config)?;
                let result = match client.send(call).await {
                    Ok(answer) => answer.into_inner(),
                    Err(status) => {
                        return Ok(Exchanged {
                            accepted: 0,
                            refusal: Some(status.to_string()),
                        })
                    }
                };
                Ok(grpc_results(&[result]))
            }
            Session::GrpcStream { requests, results } => {
                for i in first..first + count {
                    requests.send(grpc_request(config, i)).await?;
                }
                let mut answers = Vec::with_capacity(count as usize);
                while (answers.len() as u64) < count {
                    match results.message().await? {
                        Some(result) => answers.push(result),
                        None => bail!("the stream ended early"),
                    }
                }
                Ok(grpc_results(&answers))
            }
            Session::Redis { resp, script } => {
                let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
                for i in first..first + count {
                    let plan = config.model.plan(i);
                    let check = Check {
                        number: plan.number,
                        person: plan.to.trim_start_matches('+'),
                        key: i,
                        now_ms,
                        mps: config.mps,
                        tier_limit: config.tier_limit,
                    };
                    queue_check(resp, script, &check);
                }
                resp.flush().await?;
                let mut exchanged = Exchanged {
                    accepted: 0,
                    refusal: None,
                };
                for _ in 0..count {
                    match resp.read().await? {
                        RedisReply::Text(answer) if answer == "accepted" => exchanged.accepted += 1,
                        other => {
                            exchanged.refusal.get_or_insert(format!("{other:?}"));
                        }
                    }
                }
                Ok(exchanged)
            }
        }
    }
}

async fn grpc_client(config: &DriverConfig) -> Result<MessagingClient<Channel>> {
    let channel = Channel::from_shared(config.target.clone())?
        .connect()
        .await?;
    Ok(MessagingClient::new(channel))
}

fn authorise<T>(call: &mut tonic::Request<T>, config: &DriverConfig) -> Result<()> {
    call.metadata_mut()
        .insert("authorization", format!("Bearer {}", config.token).parse()?);
    Ok(())
}

fn grpc_request(config: &DriverConfig, i: u64) -> SendRequest {
    let plan = config.model.plan(i);
    SendRequest {
        correlation: i,
        phone_number_id: plan.number.to_string(),
        request_json: plan.body,
        idempotency_key: plan.key.unwrap_or_default(),
        ..SendRequest::default()
    }
}

fn grpc_results(results: &[SendResult]) -> Exchanged {
    Exchanged {
        accepted: results.iter().filter(|r| r.http_status == 200).count() as u64,
        refusal: results
            .iter()
            .find(|r| r.http_status != 200)
            .map(|r| format!("{}: {}", r.http_status, r.body_json)),
    }
}

/// The single endpoint for one message, the bulk endpoint for more.
async fn http_exchange(
    client: &Client<HttpConnector, Full<Bytes>>,
    config: &DriverConfig,
    first: u64,
    count: u64,
) -> Result<Exchanged> {
    let mut key = None;
    let (url, content_type, body) = if config.batch == 1 {
        let plan = config.model.plan(first);
        key = plan.key;
        (
            format!("{}/v23.0/{}/messages", config.target, plan.number),
            "application/json",
            plan.body,
        )
    } else {
        let lines: String = (first..first + count)
            .map(|i| {
                let plan = config.model.plan(i);
                let key = plan
                    .key
                    .map(|k| format!(",\"idempotency_key\":\"{k}\""))
                    .unwrap_or_default();
                format!(
                    "{{\"phone_number_id\":\"{}\"{key},\"request\":{}}}\n",
                    plan.number, plan.body
                )
            })
            .collect();
        (
            format!("{}/wagate/v1/bulk", config.target),
            "application/x-ndjson",
            lines,
        )
    };
    let mut request = Request::post(url)
        .header("authorization", format!("Bearer {}", config.token))
        .header("content-type", content_type);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let answer = client.request(request).await?;
    let status = answer.status();
    let bytes = answer.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let (accepted, refusal) = if config.batch == 1 {
        let ok = status.is_success();
        (u64::from(ok), (!ok).then(|| format!("{status}: {text}")))
    } else {
        let accepted = text
            .lines()
            .filter(|l| l.contains("\"status\":200"))
            .count() as u64;
        let refusal = text
            .lines()
            .find(|l| !l.contains("\"status\":200"))
            .map(|l| format!("{status}: {l}"));
        (
            accepted,
            refusal.or_else(|| (accepted < count).then(|| format!("{status}: {text}"))),
        )
    };
    Ok(Exchanged { accepted, refusal })
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

pub async fn run(config: DriverConfig) -> Result<Summary> {
    check_loopback(&config.target)?;
    if config.transport == Transport::GrpcUnary && config.batch != 1 {
        bail!("unary gRPC sends one message per call: --batch 1");
    }
    let http: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.concurrency)
        .build(HttpConnector::new());
    let next = Arc::new(AtomicU64::new(0));
    let (accepted, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let config = Arc::new(config);
    open_windows(&config).await?;
    let mut sessions = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        sessions.push(Session::open(&config, &http).await?);
    }
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let sample: Arc<Mutex<Option<String>>> = Arc::default();
    let per_second: Arc<Vec<AtomicU64>> = Arc::new(
        (0..=config.max_duration.as_secs() + 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let latency_per_second: Arc<Vec<Mutex<Histogram<u64>>>> = Arc::new(
        (0..=config.max_duration.as_secs() + 1)
            .map(|_| Mutex::new(Histogram::new(2).expect("a histogram")))
            .collect(),
    );
    let mut workers = Vec::new();
    for mut session in sessions {
        let (next, config) = (next.clone(), config.clone());
        let (accepted, other, latency) = (accepted.clone(), other.clone(), latency.clone());
        let (per_second, sample) = (per_second.clone(), sample.clone());
        let latency_per_second = latency_per_second.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Histogram::<u64>::new(3).expect("a histogram");
            while Instant::now() < deadline {
                let first = next.fetch_add(config.batch as u64, Ordering::Relaxed);
                if first >= config.messages {
                    break;
                }
                let count = (config.messages - first).min(config.batch as u64);
                let sent = match config.rate {
                    Some(rate) => {
                        let request = first / config.batch as u64;
                        let intended = started + intended_offset(request, rate, config.burst);
                        tokio::time::sleep_until(intended.into()).await;
                        intended
                    }
                    None => Instant::now(),
                };
                let exchanged = session
                    .exchange(&config, first, count)
                    .await
                    .unwrap_or_else(|error| Exchanged {
                        accepted: 0,
                        refusal: Some(error.to_string()),
                    });
                let took = sent.elapsed().as_micros() as u64;
                let _ = mine.record(took);
                if let Some(refusal) = exchanged.refusal {
                    sample.lock().expect("sample").get_or_insert(refusal);
                }
                accepted.fetch_add(exchanged.accepted, Ordering::Relaxed);
                other.fetch_add(count - exchanged.accepted.min(count), Ordering::Relaxed);
                let second = started.elapsed().as_secs() as usize;
                if let Some(slot) = per_second.get(second) {
                    slot.fetch_add(count, Ordering::Relaxed);
                }
                if let Some(slot) = latency_per_second.get(second) {
                    let _ = slot.lock().expect("latency").record(took);
                }
            }
            latency
                .lock()
                .expect("latency")
                .add(&mine)
                .expect("same bounds");
        }));
    }
    let progress = std::io::stderr().is_terminal().then(|| {
        let (accepted, other, total) = (accepted.clone(), other.clone(), config.messages);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let done = accepted.load(Ordering::Relaxed) + other.load(Ordering::Relaxed);
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
    let seconds = started.elapsed().as_secs_f64();
    let (accepted, other) = (
        accepted.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let latency = latency.lock().expect("latency").clone();
    let mut per_second: Vec<u64> = per_second
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    while per_second.last() == Some(&0) {
        per_second.pop();
    }
    let p99_per_second = latency_per_second
        .iter()
        .take(per_second.len())
        .map(|h| h.lock().expect("latency").value_at_quantile(0.99))
        .collect();
    let first_not_accepted = sample.lock().expect("sample").clone();
    Ok(Summary {
        messages: accepted + other,
        accepted,
        other,
        seconds,
        latency,
        per_second,
        p99_per_second,
        open_loop_rate: config.rate,
        first_not_accepted,
    })
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
