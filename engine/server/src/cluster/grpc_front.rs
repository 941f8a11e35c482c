//! A cluster node's gRPC port: the standalone server's `Messaging` and `Records`, each call
//! answered by the engine of the partition it names, here or on its owner's node (invariant
//! C5). A send goes to its number's partition as the gRPC call it is (`grpc_wire`); the
//! requests of a stream that wait together are cut per partition, each part sent as one
//! stream to its owner, and the results given back in the caller's order. `Records` calls
//! become their HTTP twins and are routed as the HTTP front routes them (a message id's
//! partition, a campaign asked of each partition in turn), so both ports answer alike.
//! Connections are bounded as the standalone gRPC port's are (`accept`, `grpc_port`).

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::grpc_wire::{self, SEND, SEND_STREAM};
use super::wire::{Answer, Forwarded};
use crate::accept::{Acceptor, ConnectionCap};
use crate::grpc::proto::messaging_server::{Messaging, MessagingServer};
use crate::grpc::proto::records_server::RecordsServer;
use crate::grpc::proto::{SendRequest, SendResult};
use crate::grpc_records::{GrpcRecords, HttpTwin};
use crate::tenants::Tenants;

/// Requests of one stream sent on together at most.
const STREAM_BATCH: usize = 1_024;

/// What the gRPC port needs of its node.
#[tonic::async_trait]
pub(crate) trait Partitions: Send + Sync + 'static {
    /// The partition of number `id`; for a number no partition has, one that answers so.
    fn partition_of_number(&self, id: &str) -> u32;
    /// `request`'s answer from `partition`'s owner.
    async fn to_partition(&self, partition: u32, request: &Forwarded) -> Answer;
    /// `request`'s answer, routed as the HTTP front routes it.
    async fn route(&self, request: Forwarded) -> Answer;
}

/// The bounds of the port's connections, as the standalone server's.
pub(crate) struct PortBounds {
    pub(crate) cap: ConnectionCap,
    pub(crate) first_bytes: std::time::Duration,
    pub(crate) idle: std::time::Duration,
    pub(crate) max_message_bytes: usize,
    pub(crate) refused: Counter,
    pub(crate) timed_out: Counter,
    /// The tenants, so a stream without a sender's token is refused as it opens.
    pub(crate) tenants: Arc<Tenants>,
}

/// Serves `listener` until `closed` turns true.
pub(crate) async fn serve(
    partitions: Arc<dyn Partitions>,
    listener: TcpListener,
    bounds: PortBounds,
    closed: watch::Receiver<bool>,
) {
    let acceptor = Acceptor::new(listener, bounds.cap, "grpc", b"", bounds.refused);
    let mut closing = closed.clone();
    let incoming = crate::grpc_port::incoming(
        acceptor,
        (bounds.first_bytes, bounds.idle),
        bounds.timed_out,
        closed,
    );
    let served = tonic::transport::Server::builder()
        .add_service(
            MessagingServer::new(FrontMessaging {
                partitions: partitions.clone(),
                tenants: bounds.tenants,
            })
            .max_decoding_message_size(bounds.max_message_bytes),
        )
        .add_service(RecordsServer::new(GrpcRecords::new(FrontTwin(partitions))))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = closing.changed().await;
        })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the node's gRPC port stopped");
    }
}

/// `Records` calls' HTTP twins, routed by the node's front.
struct FrontTwin(Arc<dyn Partitions>);

#[tonic::async_trait]
impl HttpTwin for FrontTwin {
    async fn answer(&self, request: hyper::Request<Bytes>) -> Result<(u16, Bytes), Status> {
        let (parts, body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let answer = self
            .0
            .route(Forwarded {
                method: parts.method,
                target,
                headers: parts.headers,
                body,
            })
            .await;
        Ok((answer.status.as_u16(), answer.body))
    }
}

struct FrontMessaging {
    partitions: Arc<dyn Partitions>,
    tenants: Arc<Tenants>,
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<SendResult, Status>> + Send>>;

#[tonic::async_trait]
impl Messaging for FrontMessaging {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResult>, Status> {
        let partition = self
            .partitions
            .partition_of_number(&request.get_ref().phone_number_id);
        let (metadata, _, asked) = request.into_parts();
        let call = grpc_wire::call(SEND, &metadata, Bytes::from(asked.encode_to_vec()));
        let answer = self.partitions.to_partition(partition, &call).await;
        let (metadata, body) = grpc_wire::reply(answer)?;
        let result = SendResult::decode(body)
            .map_err(|_| Status::internal("the partition's answer was unreadable"))?;
        let mut response = Response::new(result);
        *response.metadata_mut() = metadata;
        Ok(response)
    }

    type SendStreamStream = ResultStream;

    async fn send_stream(
        &self,
        request: Request<Streaming<SendRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        let (metadata, _, mut incoming) = request.into_parts();
        // Refused as it opens, as on a standalone server (each part's owner asks again).
        if let Err(refused) = self.tenants.tenant(&metadata.clone().into_headers()) {
            return Err(Status::unauthenticated(refused.details));
        }
        let (results, outgoing) = mpsc::channel::<Result<SendResult, Status>>(STREAM_BATCH);
        let partitions = self.partitions.clone();
        tokio::spawn(async move {
            loop {
                let batch = match next_batch(&mut incoming).await {
                    Ok(batch) if batch.is_empty() => return,
                    Ok(batch) => batch,
                    Err(status) => {
                        let _ = results.send(Err(status)).await;
                        return;
                    }
                };
                let answered = send_batch(partitions.as_ref(), &metadata, batch).await;
                let answered = match answered {
                    Ok(answered) => answered,
                    Err(status) => {
                        let _ = results.send(Err(status)).await;
                        return;
                    }
                };
                for result in answered {
                    if results.send(Ok(result)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outgoing))))
    }
}

/// The stream's next requests: the first awaited, then those already waiting; none at its end.
async fn next_batch(incoming: &mut Streaming<SendRequest>) -> Result<Vec<SendRequest>, Status> {
    let Some(first) = incoming.message().await? else {
        return Ok(Vec::new());
    };
    let mut batch = vec![first];
    while batch.len() < STREAM_BATCH {
        match incoming.message().now_or_never() {
            Some(Ok(Some(request))) => batch.push(request),
            Some(Err(status)) => return Err(status),
            Some(Ok(None)) | None => break,
        }
    }
    Ok(batch)
}

/// `batch` sent on per partition, all at once; the results in `batch`'s order. A partition
/// with no reachable owner answers its requests 503 (try again), as an overloaded server
/// does; any other refusal (a bad token) ends the stream.
async fn send_batch(
    partitions: &dyn Partitions,
    metadata: &tonic::metadata::MetadataMap,
    batch: Vec<SendRequest>,
) -> Result<Vec<SendResult>, Status> {
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, request) in batch.iter().enumerate() {
        let partition = partitions.partition_of_number(&request.phone_number_id);
        match groups.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, indices)) => indices.push(i),
            None => groups.push((partition, vec![i])),
        }
    }
    let asked = groups.iter().map(|(partition, indices)| {
        let body = grpc_wire::pack(
            indices
                .iter()
                .map(|i| Bytes::from(batch[*i].encode_to_vec())),
        );
        let call = grpc_wire::call(SEND_STREAM, metadata, body);
        async move { partitions.to_partition(*partition, &call).await }
    });
    let answers = futures_util::future::join_all(asked).await;
    let mut ordered: Vec<Option<SendResult>> = vec![None; batch.len()];
    for ((_, indices), answer) in groups.iter().zip(answers) {
        let results = match grpc_wire::reply(answer) {
            Ok((_, body)) => grpc_wire::unpack(body)
                .map(|parts| {
                    parts
                        .into_iter()
                        .map(SendResult::decode)
                        .collect::<Result<Vec<_>, _>>()
                })
                .and_then(Result::ok)
                .filter(|results| results.len() == indices.len()),
            Err(status) if status.code() == tonic::Code::Unavailable => None,
            Err(status) => return Err(status),
        };
        match results {
            Some(results) => {
                for (i, result) in indices.iter().zip(results) {
                    ordered[*i] = Some(result);
                }
            }
            None => {
                for i in indices {
                    ordered[*i] = Some(unavailable(batch[*i].correlation));
                }
            }
        }
    }
    Ok(ordered.into_iter().flatten().collect())
}

/// A send's result when its partition has no reachable owner now: 503, try again shortly.
fn unavailable(correlation: u64) -> SendResult {
    let answer =
        Answer::unavailable("this partition has no reachable owner now: try again shortly");
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    SendResult {
        correlation,
        http_status: u32::from(answer.status.as_u16()),
        error_code: body["error"]["code"].as_u64().unwrap_or(2) as u32,
        error_reason: "partition_unavailable".to_string(),
        error_details: body["error"]["message"].as_str().unwrap_or("").to_string(),
        retry_after_secs: 1,
        body_json: body.to_string(),
        ..SendResult::default()
    }
}
