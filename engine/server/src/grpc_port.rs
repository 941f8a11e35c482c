//! The gRPC port's connections, for tonic: accepted under the cap both ports share
//! (`accept`), and each closed when no byte has moved either way for its time (the first
//! bytes within `header_read_timeout_ms`, then `idle_timeout_secs`), so that silent clients
//! cannot hold descriptors. HTTP/2 pings are bytes: a client that keeps its connection alive
//! that way keeps it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::accept::Acceptor;
use super::metrics::bump;

/// The connections tonic serves, until `closed` turns true.
pub(crate) fn incoming(
    mut acceptor: Acceptor,
    (first, idle): (Duration, Duration),
    timed_out: Counter,
    mut closed: watch::Receiver<bool>,
) -> ReceiverStream<std::io::Result<IdleCut>> {
    let (give, taken) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (stream, permit) = tokio::select! {
                accepted = acceptor.next() => accepted,
                _ = closed.changed() => return,
                _ = give.closed() => return,
            };
            let connection = IdleCut::new(stream, permit, first, idle, timed_out.clone());
            if give.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(taken)
}

/// A TCP connection that fails its reads once no byte has moved for its time, holding its
/// place under the connection cap while open.
pub(crate) struct IdleCut {
    stream: TcpStream,
    idle: Duration,
    due: Pin<Box<Sleep>>,
    timed_out: Counter,
    _open: OwnedSemaphorePermit,
}

impl IdleCut {
    fn new(
        stream: TcpStream,
        open: OwnedSemaphorePermit,
        first: Duration,
        idle: Duration,
        timed_out: Counter,
    ) -> IdleCut {
        IdleCut {
            stream,
            idle,
            due: Box::pin(tokio::time::sleep(first)),
            timed_out,
            _open: open,
        }
    }

    fn moved(&mut self) {
        self.due.as_mut().reset(Instant::now() + self.idle);
    }
}

impl AsyncRead for IdleCut {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.due.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    bump(&self.timed_out);
                    Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
                }
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }
}

impl AsyncWrite for IdleCut {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for IdleCut {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
