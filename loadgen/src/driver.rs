//! The closed-loop HTTP driver: N requests in flight against wagate's single-message endpoint
//! or its bulk endpoint, each run bounded in requests and in time, latency in an hdrhistogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// wagate's base URL; only loopback addresses are accepted.
    pub target: String,
    pub token: String,
    pub number: u64,
    pub template: String,
    /// Recipients are `+1650000000` + i, for i below this.
    pub recipients: u64,
    pub concurrency: usize,
    /// Messages to send at most.
    pub messages: u64,
    pub max_duration: Duration,
    /// Messages per request: 1 uses the single endpoint, more the bulk endpoint.
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub messages: u64,
    pub accepted: u64,
    pub other: u64,
    pub seconds: f64,
    /// Request latency in microseconds.
    pub latency: Histogram<u64>,
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
        })
    }
}

/// Refuses any target that is not on this machine: load runs stay on loopback.
pub fn check_loopback(target: &str) -> Result<()> {
    let host = target
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost") {
        bail!("load runs only go to loopback; {target} is not");
    }
    Ok(())
}

fn recipient(i: u64) -> String {
    format!("+1650{:07}", i)
}

fn message(config: &DriverConfig, i: u64) -> Value {
    json!({
        "messaging_product": "whatsapp", "to": recipient(i % config.recipients), "type": "template",
        "template": { "name": config.template, "language": { "code": "en_US" },
                      "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "x" }] }] }
    })
}

pub async fn run(config: DriverConfig) -> Result<Summary> {
    check_loopback(&config.target)?;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.concurrency)
        .build(HttpConnector::new());
    let next = Arc::new(AtomicU64::new(0));
    let (accepted, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let config = Arc::new(config);
    let mut workers = Vec::new();
    for _ in 0..config.concurrency {
        let (client, next, config) = (client.clone(), next.clone(), config.clone());
        let (accepted, other, latency) = (accepted.clone(), other.clone(), latency.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = Histogram::<u64>::new(3).expect("a histogram");
            while Instant::now() < deadline {
                let first = next.fetch_add(config.batch as u64, Ordering::Relaxed);
                if first >= config.messages {
                    break;
                }
                let count = (config.messages - first).min(config.batch as u64);
                let (url, content_type, body) = if config.batch == 1 {
                    (
                        format!("{}/v23.0/{}/messages", config.target, config.number),
                        "application/json",
                        message(&config, first).to_string(),
                    )
                } else {
                    let lines: String = (first..first + count)
                        .map(|i| {
                            json!({ "phone_number_id": config.number.to_string(),
                                    "request": message(&config, i) })
                            .to_string()
                                + "\n"
                        })
                        .collect();
                    (
                        format!("{}/wagate/v1/bulk", config.target),
                        "application/x-ndjson",
                        lines,
                    )
                };
                let request = Request::post(url)
                    .header("authorization", format!("Bearer {}", config.token))
                    .header("content-type", content_type)
                    .body(Full::new(Bytes::from(body)))
                    .expect("a valid request");
                let sent = Instant::now();
                let Ok(answer) = client.request(request).await else {
                    other.fetch_add(count, Ordering::Relaxed);
                    continue;
                };
                let status = answer.status();
                let body = answer.into_body().collect().await.map(|b| b.to_bytes());
                let _ = mine.record(sent.elapsed().as_micros() as u64);
                let ok = match (&body, config.batch) {
                    (Ok(_), 1) => u64::from(status.is_success()),
                    (Ok(bytes), _) => bytes
                        .split(|b| *b == b'\n')
                        .filter(|line| line.windows(12).any(|w| w == b"\"status\":200"))
                        .count() as u64,
                    (Err(_), _) => 0,
                };
                accepted.fetch_add(ok, Ordering::Relaxed);
                other.fetch_add(count - ok, Ordering::Relaxed);
            }
            latency
                .lock()
                .expect("latency")
                .add(&mine)
                .expect("same bounds");
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (accepted, other) = (
        accepted.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let latency = latency.lock().expect("latency").clone();
    Ok(Summary {
        messages: accepted + other,
        accepted,
        other,
        seconds,
        latency,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_targets_are_driven() {
        assert!(super::check_loopback("http://127.0.0.1:8080").is_ok());
        assert!(super::check_loopback("http://localhost:8080").is_ok());
        assert!(super::check_loopback("http://graph.facebook.com").is_err());
        assert!(super::check_loopback("http://10.0.0.1:8080").is_err());
    }
}
