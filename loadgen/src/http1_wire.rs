//! HTTP/1.1 written and read by the worker's own task on its kept-alive TCP connection, the
//! way wrk drives a server: each request one write of bytes built in place, each answer read
//! into a reused buffer and parsed where it lies. hyper's client runs every connection as a
//! task of its own, so each request cost two task wake-ups and a header map on top of the
//! socket's work; on the two cores the driver shares with wagate that was CPU taken from the
//! server under test.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Headers an answer may carry; wagate's and mock-meta's carry a handful.
const MAX_HEADERS: usize = 32;
/// An answer's head larger than this is not one this driver expects.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// One answer: its status and its body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

pub(crate) struct Http1Wire {
    stream: TcpStream,
    /// Bytes read and not yet consumed: a head being completed, then its body.
    read: Vec<u8>,
    /// The next request, built here so that no request allocates.
    write: Vec<u8>,
    /// The server said it closes the connection after its last answer.
    closing: bool,
}

/// How an answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes (an HTTP/1.1 answer with neither header).
    Close,
}

impl Http1Wire {
    pub(crate) async fn connect(address: &str) -> Result<Http1Wire> {
        let stream = crate::driver::connect(address, "the target").await?;
        Ok(Http1Wire {
            stream,
            read: Vec::with_capacity(4096),
            write: Vec::with_capacity(1024),
            closing: false,
        })
    }

    /// Whether the server closes this connection: the next request needs a new one.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing
    }

    /// Sends `method path` with `headers` (Host included by the caller) and `body`, and reads
    /// the whole answer.
    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer> {
        self.write.clear();
        for part in [method, " ", path, " HTTP/1.1\r\n"] {
            self.write.extend_from_slice(part.as_bytes());
        }
        for (name, value) in headers {
            for part in [name, ": ", value, "\r\n"] {
                self.write.extend_from_slice(part.as_bytes());
            }
        }
        let length = body.len().to_string();
        for part in ["content-length: ", &length, "\r\n\r\n"] {
            self.write.extend_from_slice(part.as_bytes());
        }
        self.write.extend_from_slice(body);
        if let Err(error) = self.stream.write_all(&self.write).await {
            self.closing = true;
            return Err(error.into());
        }
        let answer = self.read_answer().await;
        if answer.is_err() {
            self.closing = true;
        }
        answer
    }

    async fn fill(&mut self) -> Result<usize> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(4096);
        }
        Ok(self.stream.read_buf(&mut self.read).await?)
    }

    async fn read_answer(&mut self) -> Result<Answer> {
        let (head, status, framing) = loop {
            if let Some(parsed) = parse_head(&self.read)? {
                break parsed;
            }
            if self.read.len() > MAX_HEAD_BYTES {
                bail!("an answer's head larger than {MAX_HEAD_BYTES} bytes");
            }
            if self.fill().await? == 0 {
                bail!("the server closed the connection before answering");
            }
        };
        self.read.drain(..head.length);
        self.closing |= head.close;
        let body = match framing {
            Framing::Length(length) => {
                while self.read.len() < length {
                    if self.fill().await? == 0 {
                        bail!("the server closed the connection inside an answer's body");
                    }
                }
                self.read.drain(..length).collect()
            }
            Framing::Close => {
                while self.fill().await? > 0 {}
                self.closing = true;
                std::mem::take(&mut self.read)
            }
            Framing::Chunked => self.read_chunks().await?,
        };
        Ok(Answer { status, body })
    }

    /// A chunked body, its chunks joined (trailers dropped).
    async fn read_chunks(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let (size, line) = loop {
                match httparse::parse_chunk_size(&self.read) {
                    Ok(httparse::Status::Complete((line, size))) => break (size as usize, line),
                    Ok(httparse::Status::Partial) => {
                        if self.fill().await? == 0 {
                            bail!("the server closed the connection inside a chunk");
                        }
                    }
                    Err(_) => bail!("a malformed chunk size"),
                }
            };
            // The chunk, then its CRLF; the last chunk's CRLF ends the (empty) trailers.
            while self.read.len() < line + size + 2 {
                if self.fill().await? == 0 {
                    bail!("the server closed the connection inside a chunk");
                }
            }
            body.extend_from_slice(&self.read[line..line + size]);
            self.read.drain(..line + size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// What an answer's head says: its length, and whether the server closes after it.
struct Head {
    length: usize,
    close: bool,
}

/// The head at the start of `bytes`, if it is all there.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, u16, Framing)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(bytes).context("a malformed answer")? {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let mut close = response.version == Some(0);
    let mut framing = Framing::Close;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(value.parse().context("a malformed Content-Length")?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            framing = Framing::Chunked;
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    Ok(Some((Head { length, close }, status, framing)))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each request on one connection with the next of `answers`,
    /// written in pieces of `piece` bytes, and returns the requests it read.
    async fn scripted(
        answers: Vec<&'static str>,
        piece: usize,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut requests = Vec::new();
            let mut pending = Vec::new();
            for answer in answers {
                loop {
                    let text = String::from_utf8_lossy(&pending).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.parse().expect("length"));
                        if pending.len() >= end + 4 + length {
                            requests.push(text[..end + 4 + length].to_string());
                            pending.drain(..end + 4 + length);
                            break;
                        }
                    }
                    let mut buffer = [0u8; 1024];
                    let n = stream.read(&mut buffer).await.expect("read");
                    pending.extend_from_slice(&buffer[..n]);
                }
                for part in answer.as_bytes().chunks(piece) {
                    stream.write_all(part).await.expect("write");
                    stream.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
            }
            requests
        });
        (address, server)
    }

    #[tokio::test]
    async fn answers_framed_by_length_and_by_chunks_are_read_whole_on_one_connection() {
        let (address, server) = scripted(
            vec![
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst",
                "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthird",
            ],
            3,
        )
        .await;
        let mut wire = Http1Wire::connect(&address).await.expect("connect");
        let headers = [("host", "here"), ("authorization", "Bearer t")];
        let mut seen = Vec::new();
        for body in ["{}", "{\"a\":1}", "", "x"] {
            let answer = wire
                .exchange("POST", "/v23.0/1/messages", &headers, body.as_bytes())
                .await
                .expect("answered");
            seen.push((
                answer.status,
                String::from_utf8(answer.body).expect("utf-8"),
            ));
        }
        assert_eq!(
            seen,
            [
                (200, "first".to_string()),
                (400, "second".to_string()),
                (204, String::new()),
                (200, "third".to_string()),
            ]
        );
        assert!(wire.is_closed(), "the last answer said the server closes");
        let requests = server.await.expect("server");
        assert_eq!(
            requests[1],
            "POST /v23.0/1/messages HTTP/1.1\r\nhost: here\r\nauthorization: Bearer t\r\n\
             content-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[tokio::test]
    async fn a_server_that_closes_without_answering_is_an_error_and_closes_the_wire() {
        let (address, _server) = scripted(vec![], 1).await;
        let mut wire = Http1Wire::connect(&address).await.expect("connect");
        let answer = wire.exchange("GET", "/", &[("host", "here")], b"").await;
        assert!(answer.is_err(), "no answer came");
        assert!(wire.is_closed());
    }
}
