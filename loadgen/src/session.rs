//! One worker's connection to its target, by transport, and one exchange over it: a request
//! (or a batch of sends on a stream or a Redis pipeline) and what came back.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use wagate_proto::messaging_client::MessagingClient;
use wagate_proto::{SendRequest, SendResult};

use crate::driver::{address_of, DriverConfig, Transport};
use crate::http_connection::HttpConnection;
use crate::redis_baseline::{load_script, queue_check, Check, Reply as RedisReply, Resp};

/// One worker's connection to wagate, by transport.
pub(crate) enum Session {
    Http(HttpConnection),
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
pub(crate) struct Exchanged {
    pub accepted: u64,
    /// What the first send not accepted got, if one was not.
    pub refusal: Option<String>,
}

impl Session {
    pub(crate) async fn open(config: &DriverConfig) -> Result<Session> {
        Ok(match config.transport {
            Transport::Http => Session::Http(HttpConnection::open(&config.target, false).await?),
            Transport::Http2 => Session::Http(HttpConnection::open(&config.target, true).await?),
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
                let address = address_of(&config.target);
                let mut resp = Resp::connect(address).await?;
                let script = load_script(&mut resp).await?;
                Session::Redis { resp, script }
            }
        })
    }

    /// Another worker's handle on this session's connection, where the transport multiplexes
    /// (HTTP/2); `None` where each worker needs a connection of its own.
    pub(crate) fn shared(&self) -> Option<Session> {
        match self {
            Session::Http(connection) => connection.shared().map(Session::Http),
            _ => None,
        }
    }

    pub(crate) async fn exchange(
        &mut self,
        config: &DriverConfig,
        first: u64,
        count: u64,
    ) -> Result<Exchanged> {
        match self {
            Session::Http(connection) => http_exchange(connection, config, first, count).await,
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
    connection: &mut HttpConnection,
    config: &DriverConfig,
    first: u64,
    count: u64,
) -> Result<Exchanged> {
    let mut key = None;
    let (url, content_type, body) = if config.batch == 1 {
        let plan = config.model.plan(first);
        key = plan.key;
        (
            format!("/v23.0/{}/messages", plan.number),
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
        ("/wagate/v1/bulk".to_string(), "application/x-ndjson", lines)
    };
    let authorization = format!("Bearer {}", config.token);
    let mut headers = vec![
        ("authorization", authorization.as_str()),
        ("content-type", content_type),
    ];
    if let Some(key) = &key {
        headers.push(("idempotency-key", key.as_str()));
    }
    let answer = connection
        .send("POST", &url, &headers, body.into_bytes())
        .await?;
    let status = answer.status;
    let text = String::from_utf8_lossy(&answer.body);
    let (accepted, refusal) = if config.batch == 1 {
        let ok = (200..300).contains(&status);
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
