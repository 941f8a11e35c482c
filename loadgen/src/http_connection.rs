//! A worker's own HTTP/1.1 connection to wagate, kept alive across its requests (as wrk keeps
//! one per connection), so a request costs no pool check-out; opened again after wagate or the
//! network closed it.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub(crate) struct HttpConnection {
    /// `host:port`, from the target URL.
    address: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConnection {
    /// A connection to `target` (`http://host:port`), opened now so that a target that does
    /// not listen fails the run before it starts.
    pub async fn open(target: &str) -> Result<HttpConnection> {
        let address = target
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut connection = HttpConnection {
            address,
            sender: None,
        };
        connection.connected().await?;
        Ok(connection)
    }

    async fn connected(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(&self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Sends `request` (its URI a path; the Host header is added here) and returns the
    /// answer's head, its body still to be read.
    pub async fn send(&mut self, mut request: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        let host = hyper::header::HeaderValue::from_str(&self.address)?;
        request.headers_mut().insert(hyper::header::HOST, host);
        let sender = self.connected().await?;
        sender.ready().await?;
        Ok(sender.send_request(request).await?)
    }
}
