//! A worker's own HTTP/1.1 connection to wagate, kept alive across its requests (as wrk keeps
//! one per connection), so a request costs no pool check-out; opened again after wagate or the
//! network closed it.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::driver::address_of;

pub(crate) struct HttpConnection {
    /// `host:port`, from the target URL.
    address: String,
    /// The same, as every request's Host header.
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConnection {
    /// A connection to `target` (`http://host:port`), opened now so that a target that does
    /// not listen fails the run before it starts.
    pub async fn open(target: &str) -> Result<HttpConnection> {
        let address = address_of(target).to_string();
        let mut connection = HttpConnection {
            host: HeaderValue::from_str(&address)?,
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
        request
            .headers_mut()
            .insert(hyper::header::HOST, self.host.clone());
        let sender = self.connected().await?;
        if sender.ready().await.is_err() {
            // Closed between the check and now (the server answered `Connection: close`, or
            // its idle timeout): once more on a new connection.
            self.sender = None;
            self.connected().await?.ready().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        Ok(sender.send_request(request).await?)
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
        let mut connection = HttpConnection::open(&format!("http://{address}"))
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
