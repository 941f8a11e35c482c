//! gRPC ingest (tonic): the same sends as the HTTP endpoints, unary or as a bidirectional
//! stream. Requests on a stream that are waiting together are decided together.

use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::ingest::Rejected;
use super::metrics::bump;
use super::send::{decide_many, on_limit, usable_sender, AnswerBody, Asked, Outcome};
use super::send_options::{send_options, AskedOptions};
use super::state::App;
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_durable::message::message_id_text;

/// The code generated from `wagate.proto` (the `wagate-proto` crate).
pub use wagate_proto as proto;

use proto::messaging_server::Messaging;
pub use proto::messaging_server::MessagingServer;
use proto::{SendRequest, SendResult};

/// Requests of one stream decided together at most.
const STREAM_BATCH: usize = 1_024;

pub struct GrpcIngest {
    pub app: App,
}

fn authorise<T>(app: &App, request: &Request<T>) -> Result<Arc<Tenant>, Status> {
    bump(&app.metrics.requests);
    let headers = request.metadata().clone().into_headers();
    app.tenants.tenant(&headers).map_err(|e| {
        bump(&app.metrics.unauthorized);
        Status::unauthenticated(e.details)
    })
}

fn asked(app: &App, tenant: &Tenant, request: SendRequest) -> (u64, Result<Asked, ApiError>) {
    let asked = on_limit(tenant, Some(&request.on_limit)).and_then(|choice| {
        let field = |text: &str| Some(std::borrow::Cow::Owned(text.to_string()));
        let options = AskedOptions {
            topic: field(&request.topic),
            send_at: field(&request.send_at),
            remind_before: field(&request.remind_before),
            event_at: field(&request.event_at),
            expire_at: field(&request.expire_at),
            valid_for: field(&request.valid_for),
            time_zone: field(&request.time_zone),
        };
        let mut options = send_options(app, &options, app.wagate.now())?;
        let (number, pool) = usable_sender(app, tenant, &request.phone_number_id)?;
        options.pool = pool;
        Ok(Asked {
            number,
            body: request.request_json.into_bytes(),
            key: (!request.idempotency_key.is_empty()).then_some(request.idempotency_key),
            queue: choice == super::config::OnLimit::Queue,
            options,
        })
    });
    (request.correlation, asked)
}

/// The result message for an outcome: the full body, and its fields picked out.
fn result_of(correlation: u64, outcome: Outcome) -> SendResult {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut result = SendResult {
        correlation,
        http_status: u32::from(outcome.status),
        retry_after_secs: outcome.retry_after.unwrap_or(0),
        body_json: outcome.body.to_json(),
        ..SendResult::default()
    };
    match &outcome.body {
        AnswerBody::Success(success) => {
            result.message_id = message_id_text(success.message_id);
            result.message_status = success.message_status.unwrap_or("accepted").to_string();
        }
        AnswerBody::Json(body) => {
            let error = &body["error"];
            result.error_code = error["code"].as_u64().unwrap_or(0) as u32;
            result.error_reason = text(&error["wagate_reason"]);
            result.error_details = text(&error["error_data"]["details"]);
        }
    }
    result
}

fn exhausted(app: &App, why: Rejected) -> Status {
    let error = super::send::rejected(app, why);
    let mut status = Status::resource_exhausted(error.0.details);
    if let Some(secs) = error.1 {
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from(secs));
    }
    status
}

async fn decide(
    app: &App,
    tenant: &Tenant,
    requests: Vec<SendRequest>,
) -> Result<Vec<SendResult>, Rejected> {
    let (correlations, asked): (Vec<u64>, Vec<_>) =
        requests.into_iter().map(|r| asked(app, tenant, r)).unzip();
    let outcomes = decide_many(app, asked).await?;
    Ok(correlations
        .into_iter()
        .zip(outcomes)
        .map(|(c, o)| result_of(c, o))
        .collect())
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<SendResult, Status>> + Send>>;

#[tonic::async_trait]
impl Messaging for GrpcIngest {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResult>, Status> {
        let started = std::time::Instant::now();
        let tenant = authorise(&self.app, &request)?;
        let mut results = decide(&self.app, &tenant, vec![request.into_inner()])
            .await
            .map_err(|why| exhausted(&self.app, why))?;
        self.app
            .metrics
            .request_took("grpc:Send".into(), started.elapsed());
        Ok(Response::new(results.pop().expect("one result")))
    }

    type SendStreamStream = ResultStream;

    async fn send_stream(
        &self,
        request: Request<Streaming<SendRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        let tenant = authorise(&self.app, &request)?;
        let mut incoming = request.into_inner();
        // A reader hands requests over; the decider takes all that are waiting at once.
        let (requests, mut waiting) = mpsc::channel::<SendRequest>(STREAM_BATCH);
        let (results, outgoing) = mpsc::channel::<Result<SendResult, Status>>(STREAM_BATCH);
        let failures = results.clone();
        let mut closing = self.app.closing.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = incoming.message() => next,
                    // Shutting down: take no more; what was taken is still answered.
                    _ = closing.wait_for(|closing| *closing) => return,
                };
                match next {
                    Ok(Some(request)) => {
                        if requests.send(request).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = failures.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        let app = self.app.clone();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while batch.len() < STREAM_BATCH {
                    match waiting.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let correlations: Vec<u64> = batch.iter().map(|r| r.correlation).collect();
                let answers = match decide(&app, &tenant, batch).await {
                    Ok(answers) => answers,
                    // Overloaded: each request is answered as the HTTP endpoint would (503
                    // with a retry hint); the stream stays open for the caller's retries.
                    Err(why) => {
                        let error = super::send::rejected(&app, why);
                        let outcome = |c| result_of(c, Outcome::error(&error.0, error.1));
                        correlations.into_iter().map(outcome).collect()
                    }
                };
                for answer in answers {
                    if results.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outgoing))))
    }
}
