//! A local stand-in for Meta's Cloud API (what wagate dispatches to) and for a tenant's
//! webhook receiver (what wagate forwards to): real HTTP servers on loopback that record
//! every request and answer as scripted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use wagate_loadgen::serve::serve_http1;

/// One request the stub received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    /// The path with its query, as asked.
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Where the stub's media files are (not recorded: a download, not a call of the API).
const MEDIA_FILE: &str = "/stub-media/file";

/// What the stub answers next: scripted answers first, then success.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Scripted {
    /// Meta's error answer: `status` with `{"error":{"code":code,...}}`.
    pub(crate) fn meta_error(status: u16, code: u32, message: &str) -> Scripted {
        Scripted {
            status,
            body: json!({ "error": { "message": message, "type": "OAuthException",
                                     "code": code, "fbtrace_id": "stub" } }),
        }
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Scripted>>,
    arrived: Notify,
    /// While set, requests are recorded but not answered (a stand-in that hangs).
    holding: std::sync::atomic::AtomicBool,
    released: Notify,
}

/// The server; it runs until the test's runtime ends.
#[derive(Clone)]
pub(crate) struct Stub {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Stub {
    pub(crate) async fn start() -> Result<Stub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        serve_http1(listener, shared.clone(), answer);
        Ok(Stub { addr, shared })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next requests with these, in order, before going back to success.
    pub(crate) fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// From now on, requests are recorded and left unanswered until [`Stub::release`].
    pub(crate) fn hold(&self) {
        self.shared
            .holding
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers the held requests (as scripted, else with success) and stops holding.
    pub(crate) fn release(&self) {
        self.shared
            .holding
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.shared.released.notify_waiters();
    }

    /// Drops the scripted answers not yet used: success from now on.
    pub(crate) fn clear_script(&self) {
        self.shared.script.lock().unwrap().clear();
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived (or fails after `limit`).
    pub(crate) async fn wait_for(&self, count: usize, limit: Duration) -> Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return Ok(received);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!(
                    "{} requests arrived within {limit:?}, expected {count}",
                    self.received().len()
                );
            }
        }
    }
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if path.starts_with(MEDIA_FILE) {
        // A media file, at the URL the stub's media reads give: a few bytes of PNG.
        return Ok(Response::builder()
            .header("content-type", "image/png")
            .body(Full::new(Bytes::from_static(b"\x89PNG")))
            .expect("a valid response"));
    }
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = request.into_body().collect().await?.to_bytes();
    let scripted = shared.script.lock().unwrap().pop_front();
    let (status, reply) = {
        let mut received = shared.received.lock().unwrap();
        let n = received.len();
        received.push(Received {
            method,
            path,
            headers,
            body,
        });
        let read_mark = serde_json::from_slice::<Value>(&received[n].body)
            .is_ok_and(|json| json["status"] == "read");
        let media_read =
            received[n].method == "GET" && received[n].path.contains("phone_number_id=");
        let upload = received[n].method == "POST" && received[n].path.ends_with("/media");
        match scripted {
            Some(s) => (s.status, s.body),
            // Meta's answer to a read mark.
            None if read_mark => (200, json!({ "success": true })),
            None if upload => (200, json!({ "id": format!("{n}") })),
            // Meta's answer to reading a media id: where its file is.
            None if media_read => (
                200,
                json!({ "messaging_product": "whatsapp", "url": format!("http://{host}{MEDIA_FILE}"),
                        "mime_type": "image/png", "sha256": "0", "file_size": 4,
                        "id": received[n].path.split(['/', '?']).nth(2).unwrap_or_default() }),
            ),
            None => (
                200,
                json!({
                    "messaging_product": "whatsapp",
                    "messages": [{ "id": format!("wamid.stub.{n}") }],
                }),
            ),
        }
    };
    shared.arrived.notify_waiters();
    loop {
        let released = shared.released.notified();
        if !shared.holding.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        released.await;
    }
    Ok(Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(reply.to_string())))
        .expect("a valid response"))
}
