//! The `Records` gRPC service: consent, people, messages, usage, erasure and campaigns answered
//! by the very HTTP handlers that answer them on the HTTP port, so both ports give the same
//! answers, with the same tokens, limits and errors. Each call becomes its HTTP twin, which an
//! [`HttpTwin`] answers: the standalone server's router called in process ([`RouterTwin`]), or
//! a cluster node's front, which routes it to its partition's owner like any HTTP request.

use axum::body::Body;
use axum::http::{header, Method};
use axum::Router;
use bytes::Bytes;
use hyper::service::Service as _;
use hyper_util::service::TowerToHyperService;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::grpc::proto::records_server::Records;
use super::grpc::proto::{
    CampaignChange, CampaignRequest, ConsentRequest, ContactRequest, CreateCampaignRequest,
    EraseRequest, MessageRequest, RecordAnswer, UsageRequest,
};
use super::state::App;

/// Answers larger than this are cut off as an internal error (none comes near it).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// What answers a call's HTTP twin.
#[tonic::async_trait]
pub(crate) trait HttpTwin: Send + Sync + 'static {
    /// `request`'s HTTP status and body.
    async fn answer(&self, request: hyper::Request<Bytes>) -> Result<(u16, Bytes), Status>;
}

/// The standalone server's HTTP handlers: its router, called in process.
pub(crate) struct RouterTwin(TowerToHyperService<Router>);

impl RouterTwin {
    pub(crate) fn new(app: App) -> RouterTwin {
        RouterTwin(TowerToHyperService::new(super::app::router(app)))
    }
}

#[tonic::async_trait]
impl HttpTwin for RouterTwin {
    async fn answer(&self, request: hyper::Request<Bytes>) -> Result<(u16, Bytes), Status> {
        let response = match self.0.call(request.map(Body::from)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok((status, bytes))
    }
}

pub(crate) struct GrpcRecords<T> {
    twin: T,
}

impl<T: HttpTwin> GrpcRecords<T> {
    pub(crate) fn new(twin: T) -> GrpcRecords<T> {
        GrpcRecords { twin }
    }

    /// Asks the HTTP handler of `path` with the call's authorization; its status and body.
    async fn ask(
        &self,
        metadata: &MetadataMap,
        method: Method,
        path: String,
        body: String,
    ) -> Result<Response<RecordAnswer>, Status> {
        self.ask_with(
            metadata,
            method,
            path,
            "application/json",
            body.into_bytes(),
        )
        .await
    }

    /// [`GrpcRecords::ask`] with a body of `content_type`.
    async fn ask_with(
        &self,
        metadata: &MetadataMap,
        method: Method,
        path: String,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(token) = metadata.get("authorization") {
            let token = token
                .to_str()
                .map_err(|_| Status::unauthenticated("the authorization metadata is not text"))?;
            request = request.header(header::AUTHORIZATION, token);
        }
        let request = request
            .body(Bytes::from(body))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (http_status, bytes) = self.twin.answer(request).await?;
        Ok(Response::new(RecordAnswer {
            http_status: u32::from(http_status),
            body_json: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }
}

/// A path segment as the caller gave it, escaped so it stays one segment (dots too: `..` is
/// never a step up).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[tonic::async_trait]
impl<T: HttpTwin> Records for GrpcRecords<T> {
    async fn change_consent(
        &self,
        request: Request<ConsentRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let body = request.get_ref().request_json.clone();
        let path = "/wagate/admin/contacts/consent".to_string();
        self.ask(request.metadata(), Method::POST, path, body).await
    }

    async fn get_contact(
        &self,
        request: Request<ContactRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let asked = request.get_ref();
        let path = format!(
            "/wagate/admin/contacts/{}/{}",
            segment(&asked.phone_number_id),
            segment(&asked.to)
        );
        self.ask(request.metadata(), Method::GET, path, String::new())
            .await
    }

    async fn get_consent_history(
        &self,
        request: Request<ContactRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let asked = request.get_ref();
        let path = format!(
            "/wagate/admin/contacts/{}/{}/history",
            segment(&asked.phone_number_id),
            segment(&asked.to)
        );
        self.ask(request.metadata(), Method::GET, path, String::new())
            .await
    }

    async fn get_message(
        &self,
        request: Request<MessageRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let path = format!(
            "/wagate/v1/messages/{}",
            segment(&request.get_ref().message_id)
        );
        self.ask(request.metadata(), Method::GET, path, String::new())
            .await
    }

    async fn erase_person(
        &self,
        request: Request<EraseRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let asked = request.get_ref();
        let mut path = format!(
            "/wagate/admin/contacts/{}/{}",
            segment(&asked.phone_number_id),
            segment(&asked.to)
        );
        if !asked.by.is_empty() {
            path.push_str(&format!("?by={}", segment(&asked.by)));
        }
        self.ask(request.metadata(), Method::DELETE, path, String::new())
            .await
    }

    async fn create_campaign(
        &self,
        request: Request<CreateCampaignRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let (metadata, _, asked) = request.into_parts();
        let mut path = format!(
            "/wagate/v1/campaigns?phone_number_id={}&template={}",
            segment(&asked.phone_number_id),
            segment(&asked.template)
        );
        for (key, value) in [
            ("language", asked.language),
            ("name", asked.name),
            ("start_at", asked.start_at),
        ] {
            if !value.is_empty() {
                path.push_str(&format!("&{key}={}", segment(&value)));
            }
        }
        if asked.daily_cap > 0 {
            path.push_str(&format!("&daily_cap={}", asked.daily_cap));
        }
        if asked.auto_resume {
            path.push_str("&auto_resume=true");
        }
        let content_type = if asked.csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        };
        self.ask_with(&metadata, Method::POST, path, content_type, asked.audience)
            .await
    }

    async fn get_campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let path = format!(
            "/wagate/v1/campaigns/{}",
            segment(&request.get_ref().campaign_id)
        );
        self.ask(request.metadata(), Method::GET, path, String::new())
            .await
    }

    async fn change_campaign(
        &self,
        request: Request<CampaignChange>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let asked = request.get_ref();
        let path = format!(
            "/wagate/v1/campaigns/{}/{}",
            segment(&asked.campaign_id),
            segment(&asked.action)
        );
        self.ask(request.metadata(), Method::POST, path, String::new())
            .await
    }

    async fn get_usage(
        &self,
        request: Request<UsageRequest>,
    ) -> Result<Response<RecordAnswer>, Status> {
        let path = format!(
            "/wagate/admin/numbers/{}/usage",
            segment(&request.get_ref().phone_number_id)
        );
        self.ask(request.metadata(), Method::GET, path, String::new())
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_segment_stays_one_segment() {
        assert_eq!(super::segment("+16505550001"), "+16505550001");
        assert_eq!(super::segment("1/../usage?x"), "1%2F%2E%2E%2Fusage%3Fx");
    }
}
