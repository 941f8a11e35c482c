//! A worker's connection to wagate, kept alive across its requests, so a request costs no pool
//! check-out; opened again after wagate or the network closed it. Over HTTP/1.1 each worker
//! has its own (as wrk keeps one per connection); over HTTP/2 (cleartext, prior knowledge)
//! workers share a few connections, each request a stream of its own.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::HeaderValue;
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::driver::address_of;

pub(crate) struct HttpConnection {
    /// `host:port`, from the target URL.
    address: String,
    /// The same, as every request's Host header (HTTP/1.1) or authority (HTTP/2).
    host: HeaderValue,
    sender: Option<Sender>,
    http2: bool,
}

/// HTTP/2's sender is a handle any number of workers may clone; HTTP/1.1's is one worker's.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(sender) => sender.ready().await,
            Sender::Http2(sender) => sender.ready().await,
        }
    }
}

impl HttpConnection {
    /// A connection to `target` (`http://host:port`), opened now so that a target that does
    /// not listen fails the run before it starts.
    pub async fn open(target: &str, http2: bool) -> Result<HttpConnection> {
        let address = address_of(target).to_string();
        let mut connection = HttpConnection {
            host: HeaderValue::from_str(&address)?,
            address,
            sender: None,
            http2,
        };
        connection.connected().await?;
        Ok(connection)
    }

    /// Another handle on this connection where HTTP/2 multiplexes it; `None` over HTTP/1.1,
    /// where each worker needs its own.
    pub fn shared(&self) -> Option<HttpConnection> {
        match &self.sender {
            Some(Sender::Http2(sender)) => Some(HttpConnection {
                address: self.address.clone(),
                host: self.host.clone(),
                sender: Some(Sender::Http2(sender.clone())),
                http2: true,
            }),
            _ => None,
        }
    }

    async fn connected(&mut self) -> Result<&mut Sender> {
        if self.sender.as_ref().is_none_or(Sender::is_closed) {
            let stream = TcpStream::connect(&self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            stream.set_nodelay(true)?;
            let io = TokioIo::new(stream);
            let sender = if self.http2 {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .context("HTTP/2 handshake")?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            } else {
                let (sender, connection) =
                    http1::handshake(io).await.context("HTTP/1.1 handshake")?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            };
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Sends `request` (its URI a path; the Host header or authority is added here) and
    /// returns the answer's head, its body still to be read.
    pub async fn send(&mut self, mut request: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        if self.http2 {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::builder()
                .scheme("http")
                .authority(self.host.as_bytes())
                .path_and_query(path)
                .build()?;
        } else {
            request
                .headers_mut()
                .insert(hyper::header::HOST, self.host.clone());
        }
        let sender = self.connected().await?;
        if sender.ready().await.is_err() {
            // Closed between the check and now (the server answered `Connection: close`, or
            // its idle timeout): once more on a new connection.
            self.sender = None;
            self.connected().await?.ready().await?;
        }
        Ok(match self.sender.as_mut().expect("connected above") {
            Sender::Http1(sender) => sender.send_request(request).await?,
            Sender::Http2(sender) => sender.send_request(request).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each connection's first request and closes it.
    async fn one_answer_per_connection() -> (String, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let mut connections = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                connections += 1;
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n{connections}"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                if connections == 3 {
                    break;
                }
            }
            connections
        });
        (address, server)
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_server_is_opened_again() {
        let (address, server) = one_answer_per_connection().await;
        let mut connection = HttpConnection::open(&format!("http://{address}"), false)
            .await
            .expect("open");
        for expected in ["1", "2", "3"] {
            let request = Request::get("/healthz")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let answer = connection.send(request).await.expect("answered");
            let body = answer.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body, expected.as_bytes());
        }
        assert_eq!(server.await.expect("server"), 3);
    }
}
