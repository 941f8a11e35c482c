//! The outbound HTTP client wagate shares between the Meta upstream and tenant forwarding:
//! pooled connections, HTTP and HTTPS (rustls, the webpki roots), a deadline per request; and
//! a client whose bodies stream, for media.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Answers larger than this are cut off: an answer to a send or a forward is a small JSON
/// document.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A request body sent as it is produced (a media upload), or an answer's error.
pub(crate) type StreamedBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client whose request bodies stream: media goes to Meta as the caller sends it.
pub(crate) type StreamingClient = Client<HttpsConnector<HttpConnector>, StreamedBody>;

pub(crate) fn client(max_idle_per_host: usize) -> HttpClient {
    pooled(max_idle_per_host)
}

pub(crate) fn streaming_client(max_idle_per_host: usize) -> StreamingClient {
    pooled(max_idle_per_host)
}

fn pooled<B>(max_idle_per_host: usize) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Why an exchange produced no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("network: {0}")]
    Network(String),
}

/// Sends `request` and reads the whole answer, within `deadline`.
pub(crate) async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    deadline: Duration,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let (status, _, body) = exchange_typed(client, request, deadline, MAX_ANSWER_BYTES).await?;
    Ok((status, body))
}

/// Like [`exchange`], with the answer's content type (relayed as it came), reading at most
/// `max_answer_bytes` of it.
pub(crate) async fn exchange_typed(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    deadline: Duration,
    max_answer_bytes: usize,
) -> Result<(StatusCode, Option<String>, Bytes), ExchangeError> {
    let work = async {
        let answer = client
            .request(request)
            .await
            .map_err(|e| ExchangeError::Network(format!("{e:?}")))?;
        let status = answer.status();
        let content_type = answer
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(answer.into_body(), max_answer_bytes)
            .collect()
            .await
            .map_err(|e| ExchangeError::Network(e.to_string()))?
            .to_bytes();
        Ok((status, content_type, body))
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| ExchangeError::Timeout(deadline))?
}
