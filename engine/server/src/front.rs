//! The HTTP port's connections. Each starts on wagate's own HTTP/1.1 reader, which answers
//! Meta's send endpoint (`POST /{version}/{phone_number_id}/messages`) itself: the head parsed
//! in place, the same checks and decision as axum's route (`send::single_head`,
//! `send::single_decide`), the answer written as one buffer. The first request it does not
//! take (another path or method, a body that is chunked, larger than the limit or announced
//! with `Expect`, an upgrade, HTTP/1.0, a head it cannot parse) hands the connection, with
//! every byte already read, to hyper serving axum's router for the rest of its life.
//!
//! Why: a single send is a small request on a kept-alive connection, and on two cores hyper's
//! dispatcher, axum's routing and the header map built for each request were a tenth of the
//! server's time per send, beside the send's own work.
//!
//! Limits, on both paths: at most `http.max_connections` open at once (the next is answered
//! 503 and closed without a task); a head must arrive within `header_read_timeout_ms` of its
//! first byte, a body within `body_read_timeout_ms`, and a kept-alive connection with no request
//! for `idle_timeout_secs` is closed, so slow or silent clients cannot hold descriptors.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::Router;
use bytes::{Buf, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{timeout, timeout_at, Instant};

use super::accept::Acceptor;
use super::body_read::bodies_full;
use super::metrics::bump;
use super::send::{self, Outcome, SEND_ENDPOINT};
use super::state::App;

/// Headers a request may carry and still be read here; more go to hyper.
const MAX_HEADERS: usize = 32;
/// A head not complete within this many bytes goes to hyper, which refuses it.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// How much room each read asks for.
const READ_ROOM: usize = 4096;
/// At most how much room a body read asks for at once.
const BODY_READ_STEP: usize = 64 << 10;
/// What hyper may hold per HTTP/1.1 connection of a request not yet handed to a handler: its
/// read buffer, room for the longest head this port takes. Bodies are counted against
/// `http.max_body_bytes_held` only once a handler reads them, so this is part of what each
/// connection adds on top of that bound (hyper's default, about 400 KiB, let 1,000 stalled
/// webhooks hold more than three times the bound; measured in `docs/benchmarks.md`).
const HYPER_READ_BUFFER: usize = MAX_HEAD_BYTES + READ_ROOM;
/// The same for HTTP/2: the connection's and each stream's receive window, HTTP/2's own
/// default (hyper's is 1 MiB).
const HTTP2_WINDOW: u32 = 65_535;

/// Serves `listener` until `closed` turns true, then lets the open connections finish the
/// request they are in (hyper's with its graceful shutdown) until `grace` has passed, cuts off
/// those still open then (they hold the engine, which must stop), and returns.
pub(crate) async fn serve(
    mut acceptor: Acceptor,
    app: App,
    router: Router,
    mut closed: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, permit) = tokio::select! {
            accepted = acceptor.next() => accepted,
            _ = closed.changed() => break,
            // Finished connections are reaped as they go, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let connection = Connection {
            app: app.clone(),
            router: router.clone(),
            closed: closed.clone(),
            _open: permit,
        };
        connections.spawn(connection.run(stream));
    }
    drop(acceptor);
    let due = Instant::now() + grace;
    let finished = timeout_at(due, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open when the stop's grace ran out: cut off"
        );
        connections.shutdown().await;
    }
}

/// The answer to a connection beyond `http.max_connections`, in Meta's error shape.
pub(crate) const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 185\r\n\r\n\
{\"error\":{\"message\":\"(#2) Service temporarily unavailable\",\"type\":\"OAuthException\",\"code\":2,\
\"error_data\":{\"details\":\"too many open connections\"},\"wagate_reason\":\"too_many_connections\"}}";

struct Connection {
    app: App,
    router: Router,
    closed: watch::Receiver<bool>,
    /// This connection's place under `http.max_connections`.
    _open: OwnedSemaphorePermit,
}

/// What the bytes read so far hold.
enum Step {
    /// Not yet a whole head.
    Incomplete,
    /// A request this reader does not take: hyper gets the connection.
    HandOver,
    /// `GET /healthz` with no body: answered here at once, never behind the engine's work.
    Health { head: usize, close: bool },
    /// A send: its head's length, its body's, whether the client closes after it, and what
    /// its head's checks found.
    Send {
        head: usize,
        body: usize,
        close: bool,
        asked: Result<send::SingleAsked, Outcome>,
    },
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream) {
        let http = &self.app.config.http;
        let (idle, head_time, body_time) = (
            http.idle_timeout(),
            http.header_read_timeout(),
            http.body_read_timeout(),
        );
        let mut read = BytesMut::with_capacity(READ_ROOM);
        let mut answer = Vec::with_capacity(512);
        loop {
            // Set when this request's first byte is here (it may have come with the last).
            let mut head_due = (!read.is_empty()).then(|| Instant::now() + head_time);
            let step = loop {
                match self.step(&read) {
                    Step::Incomplete if read.len() > MAX_HEAD_BYTES => break Step::HandOver,
                    Step::Incomplete => {}
                    step => break step,
                }
                read.reserve(READ_ROOM);
                let due = head_due.unwrap_or_else(|| Instant::now() + idle);
                tokio::select! {
                    got = timeout_at(due, stream.read_buf(&mut read)) => match got {
                        Ok(Ok(0)) | Ok(Err(_)) => return,
                        Ok(Ok(_)) => {}
                        Err(_) => return self.timed_out(),
                    },
                    // Idle when the server stops: nothing to finish.
                    _ = self.closed.changed(), if read.is_empty() => return,
                }
                head_due.get_or_insert_with(|| Instant::now() + head_time);
            };
            let (head, body, close, asked) = match step {
                Step::Send {
                    head,
                    body,
                    close,
                    asked,
                } => (head, body, close, asked),
                Step::Health { head, close } => {
                    read.advance(head);
                    let close = close || *self.closed.borrow();
                    let answer = if close { HEALTHY_AND_CLOSING } else { HEALTHY };
                    match timeout(body_time, stream.write_all(answer)).await {
                        Ok(Ok(())) if !close => continue,
                        Ok(_) => return,
                        Err(_) => return self.timed_out(),
                    }
                }
                _ => return self.hand_over(read, stream).await,
            };
            let started = Instant::now();
            let body_due = started + body_time;
            let decided = match asked {
                Ok(asked) => {
                    // The body's share of `http.max_body_bytes_held`, until it is answered.
                    let mut claim = self.app.bodies.claim();
                    let mut fits = true;
                    while read.len() < head + body {
                        // Grown as bytes arrive: an announced length costs nothing until its
                        // bytes come.
                        let step = (head + body - read.len()).min(BODY_READ_STEP);
                        let wanted = (read.len() + step - head).saturating_sub(claim.bytes());
                        if wanted > 0 && !claim.grow(wanted) {
                            fits = false;
                            break;
                        }
                        read.reserve(step);
                        match timeout_at(body_due, stream.read_buf(&mut read)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(_)) => {}
                            Err(_) => return self.timed_out(),
                        }
                    }
                    if fits {
                        read.advance(head);
                        let body = read.split_to(body).to_vec();
                        Ok(send::single_decide(&self.app, asked, body).await)
                    } else {
                        Err(Outcome::error(&bodies_full(&self.app.metrics), Some(1)))
                    }
                }
                Err(refused) => Err(refused),
            };
            let outcome = match decided {
                Ok(outcome) => outcome,
                // Refused on its head (no or another's token, an unknown number...) or for the
                // bound on held bodies: its body is read past, never held, so the connection
                // stays in step (and the client, still sending, gets the answer).
                Err(refused) => {
                    read.advance(head);
                    let mut left = body;
                    while left > 0 {
                        let held = left.min(read.len());
                        read.advance(held);
                        left -= held;
                        if left == 0 {
                            break;
                        }
                        // Not kept: room for one read at a time.
                        if read.capacity() > BODY_READ_STEP {
                            read = BytesMut::with_capacity(READ_ROOM);
                        }
                        read.reserve(READ_ROOM);
                        match timeout_at(body_due, stream.read_buf(&mut read)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(_)) => {}
                            Err(_) => return self.timed_out(),
                        }
                    }
                    refused
                }
            };
            let close = close || *self.closed.borrow();
            answer.clear();
            write_answer(&outcome, close, &mut answer);
            self.app
                .metrics
                .request_took(SEND_ENDPOINT.into(), started.elapsed());
            match timeout(body_time, stream.write_all(&answer)).await {
                Ok(Ok(())) if !close => {}
                Ok(_) => return,
                Err(_) => return self.timed_out(),
            }
        }
    }

    /// What `read` holds; a send's head is checked here, while it is borrowed in place.
    fn step(&self, read: &[u8]) -> Step {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let head = match request.parse(read) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => return Step::Incomplete,
            Err(_) => return Step::HandOver,
        };
        if request.version != Some(1) {
            return Step::HandOver;
        }
        if request.method == Some("GET") && request.path == Some("/healthz") {
            return match framing_or_none(request.headers) {
                Some((0, close)) => Step::Health { head, close },
                _ => Step::HandOver,
            };
        }
        if request.method != Some("POST") {
            return Step::HandOver;
        }
        let Some(number) = request.path.and_then(send_path_number) else {
            return Step::HandOver;
        };
        let Some((body, close)) = framing(request.headers) else {
            return Step::HandOver;
        };
        if body > self.app.config.http.max_body_bytes {
            return Step::HandOver;
        }
        Step::Send {
            head,
            body,
            close,
            asked: send::single_head(&self.app, number, &*request.headers).map_err(Outcome::from),
        }
    }

    /// A client too slow (or silent) for its deadline: the connection is closed.
    fn timed_out(&self) {
        bump(&self.app.metrics.connections_timed_out);
    }

    async fn hand_over(self, read: BytesMut, stream: TcpStream) {
        let io = TokioIo::new(Rewound { read, stream });
        let service = TowerToHyperService::new(self.router);
        let http = &self.app.config.http;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A client that sends its request and half-closes still gets the answer; a head must
        // come whole in time, which also ends a kept-alive connection left idle that long.
        builder
            .http1()
            .half_close(true)
            .max_buf_size(HYPER_READ_BUFFER)
            .timer(TokioTimer::new())
            .header_read_timeout(http.header_read_timeout().max(http.idle_timeout()));
        builder
            .http2()
            .initial_connection_window_size(HTTP2_WINDOW)
            .initial_stream_window_size(HTTP2_WINDOW)
            .timer(TokioTimer::new())
            .keep_alive_interval(http.idle_timeout())
            .keep_alive_timeout(http.header_read_timeout());
        let connection = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut closed = self.closed;
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = closed.changed() => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// The number in `/{version}/{number}/messages`, when that is the path and nothing in it is
/// escaped (axum's route decodes escapes; such a request goes there).
fn send_path_number(path: &str) -> Option<&str> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let mut parts = path.strip_prefix('/')?.split('/');
    let (version, number) = (parts.next()?, parts.next()?);
    let plain = |part: &str| !part.is_empty() && !part.contains('%');
    (plain(version) && plain(number) && parts.next() == Some("messages") && parts.next().is_none())
        .then_some(number)
}

/// `/healthz`'s answers, whole.
const HEALTHY: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\n\r\nok";
const HEALTHY_AND_CLOSING: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

/// A request's body length and whether the client closes after it, when its framing is
/// plain: one `Content-Length`, no `Transfer-Encoding`, no `Expect`, no upgrade.
fn framing(headers: &[httparse::Header<'_>]) -> Option<(usize, bool)> {
    let (length, close) = framing_parts(headers)?;
    Some((length?, close))
}

/// Like [`framing`], with no `Content-Length` read as an empty body (a GET's usual head).
fn framing_or_none(headers: &[httparse::Header<'_>]) -> Option<(usize, bool)> {
    let (length, close) = framing_parts(headers)?;
    Some((length.unwrap_or(0), close))
}

/// The `Content-Length` (if any) and whether the client closes, when the framing is plain.
fn framing_parts(headers: &[httparse::Header<'_>]) -> Option<(Option<usize>, bool)> {
    let mut length = None;
    let mut close = false;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok()?.trim();
            if length.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in std::str::from_utf8(header.value).ok()?.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    return None;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return None;
        }
    }
    Some((length, close))
}

/// `outcome` as an HTTP/1.1 answer: status line, headers, its JSON body.
fn write_answer(outcome: &Outcome, close: bool, out: &mut Vec<u8>) {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = outcome.body.to_json();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ndate: {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        httpdate::fmt_http_date(SystemTime::now()),
    );
    if let Some(secs) = outcome.retry_after {
        head.push_str(&format!("retry-after: {}\r\n", secs.max(1)));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// A connection handed to hyper: the bytes already read come first.
struct Rewound {
    read: BytesMut,
    stream: TcpStream,
}

impl AsyncRead for Rewound {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_for_too_many_connections_is_framed_by_its_length() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(TOO_MANY_CONNECTIONS).unwrap() {
            httparse::Status::Complete(head) => head,
            httparse::Status::Partial => panic!("a whole head"),
        };
        assert_eq!(response.code, Some(503));
        let length = response
            .headers
            .iter()
            .find(|h| h.name == "content-length")
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        let body = &TOO_MANY_CONNECTIONS[head..];
        assert_eq!(length, Some(body.len()));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["error"]["code"], 2);
    }

    #[test]
    fn only_the_send_path_with_plain_parts_is_read_here() {
        assert_eq!(send_path_number("/v23.0/2000001/messages"), Some("2000001"));
        assert_eq!(
            send_path_number("/v23.0/2000001/messages?x=1"),
            Some("2000001")
        );
        for other in [
            "/v23.0/2000001/messages/",
            "/v23.0//messages",
            "/v23.0/20%30/messages",
            "/wagate/v1/bulk",
            "/healthz",
            "v23.0/1/messages",
        ] {
            assert_eq!(send_path_number(other), None, "{other}");
        }
    }

    #[test]
    fn an_answer_is_framed_by_its_length_and_carries_its_retry_hint() {
        let error = wagate_cloud_api::error::ApiError::invalid_parameter("a \"quoted\" detail");
        for (retry, close) in [(Some(0), true), (None, false)] {
            let mut out = Vec::new();
            write_answer(&Outcome::error(&error, retry), close, &mut out);
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut answer = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head) = answer.parse(&out).expect("an answer") else {
                panic!("a whole head");
            };
            assert_eq!(
                (answer.code, answer.reason),
                (Some(400), Some("Bad Request"))
            );
            let value = |name: &str| {
                answer
                    .headers
                    .iter()
                    .find(|h| h.name == name)
                    .map(|h| std::str::from_utf8(h.value).expect("text"))
            };
            let body = std::str::from_utf8(&out[head..]).expect("text");
            assert_eq!(
                value("content-length"),
                Some(body.len().to_string().as_str())
            );
            let parsed: serde_json::Value = serde_json::from_str(body).expect("JSON");
            assert_eq!(parsed["error"]["code"], 100);
            assert_eq!(
                value("retry-after"),
                retry.map(|_| "1"),
                "at least a second"
            );
            assert_eq!(value("connection"), close.then_some("close"));
            assert_eq!(value("date").map(str::len), Some(29), "an IMF-fixdate");
        }
    }

    fn header<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn framing_other_than_one_plain_length_goes_to_hyper() {
        let length = header("Content-Length", "12");
        assert_eq!(framing(&[length]), Some((12, false)));
        assert_eq!(
            framing(&[length, header("connection", "keep-alive, Close")]),
            Some((12, true))
        );
        for refused in [
            vec![],
            vec![length, length],
            vec![header("content-length", "+12")],
            vec![header("content-length", "")],
            vec![length, header("Transfer-Encoding", "chunked")],
            vec![length, header("expect", "100-continue")],
            vec![length, header("upgrade", "h2c")],
            vec![length, header("connection", "upgrade")],
        ] {
            assert_eq!(framing(&refused), None, "{refused:?}");
        }
    }
}
