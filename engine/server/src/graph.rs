//! Meta's Graph API, called now on a caller's behalf: read marks from the messages endpoint,
//! and every other call under `/{version}/` that wagate does not answer itself (the
//! pass-through). Each goes with the tenant's own Meta token, or the configured one, so the
//! sender's code never holds Meta's token; Meta's answer comes back as Meta gave it. Sends are
//! not made here: they are decided, made durable and paced (`upstream`).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use super::config::MetaConfig;
use super::http_client::{
    client, exchange_typed, streaming_client, HttpClient, StreamedBody, StreamingClient,
};
use super::metrics::Metrics;
use super::tenants::Tenant;
use wagate_cloud_api::error::ApiError;
use wagate_durable::log_limit::{admit, LogLimit};
use wagate_rules::ids::PhoneNumberId;

/// Calls Meta did not answer, logged at most once a second.
static UNANSWERED: std::sync::Mutex<LogLimit> = std::sync::Mutex::new(LogLimit::new());

/// Connections kept to Meta for these calls: they are few next to the sends.
const IDLE_CONNECTIONS: usize = 16;

/// The most of Meta's answer read and relayed: a page of a business's templates with their
/// components (the sync asks for up to 1,000) runs to megabytes, far beyond a send's answer;
/// bounded so that calls in flight together hold a bounded amount.
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Which call, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphCall {
    ReadMark,
    TemplateCreate,
    PassThrough,
    /// wagate's own reads of Meta's state (`meta_sync`).
    Sync,
    /// A file streamed to Meta (`media`).
    MediaUpload,
    /// A media id's URL read, or the media deleted, or its owner asked (`media`).
    Media,
    /// A file streamed from Meta's media URL to the caller.
    MediaDownload,
}

impl GraphCall {
    fn label(self) -> &'static str {
        match self {
            GraphCall::ReadMark => "read_mark",
            GraphCall::TemplateCreate => "template_create",
            GraphCall::Sync => "sync",
            GraphCall::PassThrough => "pass_through",
            GraphCall::MediaUpload => "media_upload",
            GraphCall::Media => "media",
            GraphCall::MediaDownload => "media_download",
        }
    }
}

/// Meta's answer, as it came.
#[derive(Debug, Clone)]
pub(crate) struct MetaAnswer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

impl MetaAnswer {
    /// The answer whose head is `head` and whose body (read) is `body`.
    pub(crate) fn of(head: &hyper::http::response::Parts, body: Bytes) -> MetaAnswer {
        MetaAnswer {
            status: head.status,
            content_type: head
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        }
    }
}

pub(crate) struct MetaGraph {
    client: HttpClient,
    /// For media, whose bodies stream both ways.
    media: StreamingClient,
    /// `meta.base_url` without its final slash.
    base_url: String,
    api_version: String,
    /// `Bearer` and `meta.access_token`, for tenants without a token of their own.
    authorization: String,
    deadline: Duration,
}

impl MetaGraph {
    pub(crate) fn new(config: &MetaConfig) -> MetaGraph {
        MetaGraph {
            client: client(IDLE_CONNECTIONS),
            media: streaming_client(IDLE_CONNECTIONS),
            base_url: config.base_url.trim_end_matches('/').to_string(),
            api_version: config.api_version.clone(),
            authorization: format!("Bearer {}", config.access_token),
            deadline: Duration::from_millis(config.request_timeout_ms),
        }
    }

    /// Marks a message the person sent to `number` as read (the body as the caller wrote it,
    /// checked by `wagate_cloud_api::request::parse_messages`), now: no rule judges it and no
    /// send waits before it.
    pub(crate) async fn read_mark(
        &self,
        metrics: &Metrics,
        tenant: &Tenant,
        number: PhoneNumberId,
        body: Bytes,
    ) -> Result<MetaAnswer, ApiError> {
        let path = format!("/{}/{}/messages", self.api_version, number.0);
        self.call(
            metrics,
            GraphCall::ReadMark,
            tenant,
            Method::POST,
            &path,
            Some("application/json"),
            body,
        )
        .await
    }

    /// The Graph API version wagate's own calls name.
    pub(crate) fn api_version(&self) -> &str {
        &self.api_version
    }

    /// How long Meta may take to answer a call.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Opens a call whose body streams (`body`, sent as it is produced) and whose answer
    /// streams back: the head is awaited within `head_deadline`, the body is the caller's to
    /// read. `target` is a path and query under `meta.base_url`, or a full URL Meta gave (a
    /// media file's).
    #[allow(clippy::too_many_arguments)] // each is a part of the request, named at the call
    pub(crate) async fn open(
        &self,
        metrics: &Metrics,
        call: GraphCall,
        tenant: &Tenant,
        method: Method,
        target: &str,
        content_type: Option<&str>,
        body: StreamedBody,
        head_deadline: Duration,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ApiError> {
        let uri = if target.starts_with('/') {
            format!("{}{target}", self.base_url)
        } else {
            target.to_string()
        };
        let request = self
            .request(tenant, method, &uri, content_type)
            .body(body)
            .map_err(|e| unreachable_meta(format!("cannot build the request to Meta: {e}")))?;
        let started = Instant::now();
        let answered = tokio::time::timeout(head_deadline, self.media.request(request)).await;
        let took = started.elapsed();
        match answered {
            Ok(Ok(answer)) => {
                metrics.graph_took(call.label(), status_class(answer.status()), took);
                Ok(answer)
            }
            Ok(Err(error)) => {
                metrics.graph_took(call.label(), "unreachable", took);
                Err(self.unanswered(tenant, call, format!("{error:?}")))
            }
            Err(_) => {
                metrics.graph_took(call.label(), "unreachable", took);
                Err(self.unanswered(tenant, call, format!("no answer within {head_deadline:?}")))
            }
        }
    }

    /// A request to Meta's `uri` with the tenant's Meta token and the caller's content type.
    fn request(
        &self,
        tenant: &Tenant,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
    ) -> hyper::http::request::Builder {
        let request = Request::builder().method(method).uri(uri).header(
            header::AUTHORIZATION,
            tenant
                .meta_authorization
                .as_deref()
                .unwrap_or(&self.authorization),
        );
        match content_type {
            Some(content_type) => request.header(header::CONTENT_TYPE, content_type),
            None => request,
        }
    }

    /// Logs (at most once a second) a call Meta did not answer, and says so in Meta's shape.
    fn unanswered(&self, tenant: &Tenant, call: GraphCall, error: String) -> ApiError {
        if let Some(times) = admit(&UNANSWERED) {
            tracing::warn!(
                tenant = %tenant.name,
                call = call.label(),
                %error,
                times,
                "a call to Meta on a caller's behalf got no answer"
            );
        }
        unreachable_meta(format!("Meta did not answer: {error}"))
    }

    /// A call passed through as the caller asked it: its method, path and query, and (with a
    /// body) its content type.
    pub(crate) async fn as_asked(
        &self,
        metrics: &Metrics,
        tenant: &Tenant,
        method: Method,
        uri: &axum::http::Uri,
        headers: &axum::http::HeaderMap,
        body: Bytes,
    ) -> Result<MetaAnswer, ApiError> {
        let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| !body.is_empty());
        self.call(
            metrics,
            GraphCall::PassThrough,
            tenant,
            method,
            path_and_query,
            content_type,
            body,
        )
        .await
    }

    /// The path and query of the next page of a list Meta answered (`paging.next`, a full URL
    /// under `meta.base_url`), if there is one.
    pub(crate) fn next_page(&self, body: &[u8]) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let next = json["paging"]["next"].as_str()?;
        let path = next.strip_prefix(&self.base_url)?;
        path.starts_with('/').then(|| path.to_string())
    }

    /// Any call to Meta: `path_and_query` as the caller wrote it (its own version and query),
    /// with the tenant's Meta token and the caller's content type.
    #[allow(clippy::too_many_arguments)] // each is a part of the request, named at the call
    pub(crate) async fn call(
        &self,
        metrics: &Metrics,
        call: GraphCall,
        tenant: &Tenant,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<MetaAnswer, ApiError> {
        let uri = format!("{}{path_and_query}", self.base_url);
        let request = self
            .request(tenant, method, &uri, content_type)
            .body(Full::new(body))
            .map_err(|e| unreachable_meta(format!("cannot build the request to Meta: {e}")))?;
        let started = Instant::now();
        let answered = exchange_typed(&self.client, request, self.deadline, MAX_ANSWER_BYTES).await;
        let took = started.elapsed();
        match answered {
            Ok((status, content_type, body)) => {
                metrics.graph_took(call.label(), status_class(status), took);
                Ok(MetaAnswer {
                    status,
                    content_type,
                    body,
                })
            }
            Err(error) => {
                metrics.graph_took(call.label(), "unreachable", took);
                // When Meta is down these come with every call: one line a second says how many.
                Err(self.unanswered(tenant, call, error.to_string()))
            }
        }
    }
}

/// Meta's answer as it came: its status, its content type, its body.
pub(crate) fn relay(answer: MetaAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    if let Some(content_type) = answer
        .content_type
        .and_then(|t| header::HeaderValue::from_str(&t).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    if response.status() == StatusCode::default() {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Meta could not be reached: its code 2 (a temporary issue), for the caller to retry.
fn unreachable_meta(details: String) -> ApiError {
    ApiError::new(
        503,
        2,
        "Service temporarily unavailable",
        details,
        "meta_unreachable",
    )
}

/// The Graph path a caller may pass through: `/{version}/{id}[/{edge}...]`, each segment made
/// of letters, digits, `_`, `-` and `.` (no `.` or `..` segment, no escapes), so that the path
/// Meta is asked for is the one wagate checked. The object id, if the path is one.
pub(crate) fn graph_object(path: &str) -> Option<&str> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let version = segments.next()?;
    let number = version.strip_prefix('v')?;
    let (major, minor) = number.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    let id = segments.next()?;
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    (plain(id) && segments.all(plain)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_graph_paths_name_an_object() {
        for (path, id) in [
            ("/v23.0/1001", Some("1001")),
            ("/v23.0/1001/phone_numbers", Some("1001")),
            ("/v21.0/77/message_templates", Some("77")),
            ("/v23.0/1001/", None),
            ("/v23.0/1001/../2002", None),
            ("/v23.0/../2002", None),
            ("/v23.0/1001%2F..%2F2002", None),
            ("/v23/1001", None),
            ("/vX.0/1001", None),
            ("/wagate/admin/usage", None),
            ("/v23.0", None),
            ("v23.0/1001", None),
        ] {
            assert_eq!(graph_object(path), id, "{path}");
        }
    }
}
