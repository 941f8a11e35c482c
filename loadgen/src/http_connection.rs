//! A worker's connection to wagate, kept alive across its requests, so a request costs no pool
//! check-out; opened again after wagate or the network closed it. Over HTTP/1.1 each worker
//! has its own (as wrk keeps one per connection), written and read by the worker itself
//! ([`Http1Wire`]); over HTTP/2 (cleartext, prior knowledge, hyper's client) workers share a
//! few connections, each request a stream of its own.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::driver::address_of;
pub(crate) use crate::http1_wire::Answer;
use crate::http1_wire::Http1Wire;

pub(crate) struct HttpConnection {
    /// `host:port`, from the target URL: every request's Host header (HTTP/1.1) or authority
    /// (HTTP/2).
    address: String,
    sender: Option<Sender>,
    http2: bool,
}

/// HTTP/2's sender is a handle any number of workers may clone; HTTP/1.1's is one worker's.
enum Sender {
    Http1(Http1Wire),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(wire) => wire.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }
}

impl HttpConnection {
    /// A connection to `target` (`http://host:port`), opened now so that a target that does
    /// not listen fails the run before it starts.
    pub(crate) async fn open(target: &str, http2: bool) -> Result<HttpConnection> {
        let mut connection = HttpConnection {
            address: address_of(target).to_string(),
            sender: None,
            http2,
        };
        connection.connected().await?;
        Ok(connection)
    }

    /// Another handle on this connection where HTTP/2 multiplexes it; `None` over HTTP/1.1,
    /// where each worker needs its own.
    pub(crate) fn shared(&self) -> Option<HttpConnection> {
        match &self.sender {
            Some(Sender::Http2(sender)) => Some(HttpConnection {
                address: self.address.clone(),
                sender: Some(Sender::Http2(sender.clone())),
                http2: true,
            }),
            _ => None,
        }
    }

    async fn connected(&mut self) -> Result<&mut Sender> {
        if self.sender.as_ref().is_none_or(Sender::is_closed) {
            let sender = if self.http2 {
                let stream = crate::driver::connect(&self.address, "the target").await?;
                let (sender, connection) =
                    http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                        .await
                        .context("HTTP/2 handshake")?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            } else {
                Sender::Http1(Http1Wire::connect(&self.address).await?)
            };
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Sends `method path` with `headers` (the Host header or authority is added here) and
    /// `body`, and reads the whole answer.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer> {
        let address = self.address.clone();
        match self.connected().await? {
            Sender::Http1(wire) => {
                let mut all = Vec::with_capacity(headers.len() + 1);
                all.push(("host", address.as_str()));
                all.extend_from_slice(headers);
                wire.exchange(method, path, &all, &body).await
            }
            Sender::Http2(sender) => {
                let uri = Uri::builder()
                    .scheme("http")
                    .authority(address)
                    .path_and_query(path)
                    .build()?;
                let mut request = Request::builder().method(method).uri(uri);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request.body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                let answer = sender.send_request(request).await?;
                let status = answer.status().as_u16();
                let body = answer.into_body().collect().await?.to_bytes().to_vec();
                Ok(Answer { status, body })
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
            let answer = connection
                .send("GET", "/healthz", &[], Vec::new())
                .await
                .expect("answered");
            assert_eq!(answer.body, expected.as_bytes());
        }
        assert_eq!(server.await.expect("server"), 3);
    }
}
