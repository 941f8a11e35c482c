//! A small HTTP client for tests: JSON in, status, headers and JSON (or text) out.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Clone)]
pub(crate) struct Web {
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The message id of a send's answer (empty when it has none).
    pub(crate) fn message_id(&self) -> String {
        crate::support::fixture::sent_id(&self.json())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Meta's error code, when the answer is an error.
    pub(crate) fn code(&self) -> Option<u64> {
        self.json()["error"]["code"].as_u64()
    }
}

impl Default for Web {
    fn default() -> Self {
        Web {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

impl Web {
    pub(crate) async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into()))?;
        let answer = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .context("no answer within 30 s")??;
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let body = answer.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// POSTs JSON with a bearer token and any extra headers.
    pub(crate) async fn post(
        &self,
        url: &str,
        token: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Result<Answer> {
        let auth = format!("Bearer {token}");
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        self.request(Method::POST, url, &headers, body.to_string())
            .await
    }

    pub(crate) async fn get(&self, url: &str, token: &str) -> Result<Answer> {
        let auth = format!("Bearer {token}");
        self.request(
            Method::GET,
            url,
            &[("authorization", auth.as_str())],
            Bytes::new(),
        )
        .await
    }
}
