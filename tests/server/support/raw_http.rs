//! HTTP/1.1 by hand over one TCP connection, for tests that need what a client library hides:
//! requests pipelined in one write, chunked bodies, several kinds of request on one
//! connection, and whether the server closed it.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer before it fails.
const WAIT: Duration = Duration::from_secs(20);

pub(crate) struct RawConnection {
    stream: TcpStream,
    read: Vec<u8>,
}

/// One answer as it came: status, headers (names lowercase) and body.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl RawAnswer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A POST of `body` to `path` with `headers`, framed by Content-Length.
pub(crate) fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: wagate\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    request.into_bytes()
}

/// The same POST with a chunked body, in chunks of at most `chunk` bytes.
pub(crate) fn post_chunked(
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    chunk: usize,
) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: wagate\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("transfer-encoding: chunked\r\n\r\n");
    for part in body.as_bytes().chunks(chunk) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            part.len(),
            String::from_utf8_lossy(part)
        ));
    }
    request.push_str("0\r\n\r\n");
    request.into_bytes()
}

/// A GET of `path` with `headers`.
pub(crate) fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: wagate\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

impl RawConnection {
    /// Connects to `base` (`http://host:port`).
    pub(crate) async fn open(base: &str) -> Result<RawConnection> {
        let address = base.trim_start_matches("http://").trim_end_matches('/');
        Ok(RawConnection {
            stream: TcpStream::connect(address).await?,
            read: Vec::new(),
        })
    }

    /// Writes `bytes` as they are, in one write.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.stream.write_all(bytes).await?)
    }

    async fn fill(&mut self) -> Result<usize> {
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut buffer))
            .await
            .context("no answer in time")??;
        self.read.extend_from_slice(&buffer[..n]);
        Ok(n)
    }

    /// The next answer (framed by Content-Length; wagate frames every answer so).
    pub(crate) async fn answer(&mut self) -> Result<RawAnswer> {
        let end = loop {
            if let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if self.fill().await? == 0 {
                bail!("the server closed the connection before answering");
            }
        };
        let head = String::from_utf8(self.read[..end].to_vec())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("a status line: {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(Ok(0), |(_, v)| v.parse())?;
        while self.read.len() < end + 4 + length {
            if self.fill().await? == 0 {
                bail!("the server closed the connection inside an answer");
            }
        }
        let body = String::from_utf8(self.read[end + 4..end + 4 + length].to_vec())?;
        self.read.drain(..end + 4 + length);
        Ok(RawAnswer {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection, with nothing more to read.
    pub(crate) async fn closed_by_server(&mut self) -> Result<bool> {
        Ok(self.read.is_empty() && self.fill().await? == 0)
    }
}
