//! Accepting connections on the HTTP and gRPC ports under one cap, `http.max_connections`
//! (both ports draw file descriptors from one process): a connection beyond it is refused at
//! once, without a task, counted and logged at most once a second; accept errors (out of
//! descriptors and the like) back off instead of spinning, logged when they start.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use prometheus_client::metrics::counter::Counter;

use super::metrics::bump;
use wagate_durable::log_limit::LogLimit;

const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The places under `http.max_connections`, shared by both ports.
#[derive(Clone)]
pub(crate) struct ConnectionCap {
    open: Arc<Semaphore>,
    cap: usize,
}

impl ConnectionCap {
    /// `max_connections`, kept under the open-files limit.
    pub(crate) fn new(max_connections: usize) -> ConnectionCap {
        let cap = super::descriptors::connection_cap(max_connections);
        ConnectionCap {
            open: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }
}

/// One port's accepting.
pub(crate) struct Acceptor {
    listener: TcpListener,
    limits: ConnectionCap,
    port: &'static str,
    /// What a refused connection is told before it is closed (the HTTP port: a 503).
    refusal: &'static [u8],
    backoff: Duration,
    refusals: LogLimit,
    /// Counts the connections refused.
    refused: Counter,
}

impl Acceptor {
    pub(crate) fn new(
        listener: TcpListener,
        limits: ConnectionCap,
        port: &'static str,
        refusal: &'static [u8],
        refused: Counter,
    ) -> Acceptor {
        Acceptor {
            listener,
            limits,
            port,
            refusal,
            backoff: ACCEPT_BACKOFF_FIRST,
            refusals: LogLimit::default(),
            refused,
        }
    }

    /// The next connection, with its place under the cap. Cancel-safe: a connection is never
    /// accepted and then lost.
    pub(crate) async fn next(&mut self) -> (TcpStream, OwnedSemaphorePermit) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    self.backoff = ACCEPT_BACKOFF_FIRST;
                    match self.limits.open.clone().try_acquire_owned() {
                        Ok(permit) => return (stream, permit),
                        Err(_) => self.refuse(stream),
                    }
                }
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    // Out of file descriptors and the like: accepting again at once would
                    // spin. Logged when it starts, not at every retry.
                    if self.backoff == ACCEPT_BACKOFF_FIRST {
                        tracing::warn!(%error, port = self.port, "accepting connections fails; backing off");
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    /// Tells the connection why without waiting (a new socket's send buffer takes it) and
    /// closes it.
    fn refuse(&mut self, stream: TcpStream) {
        if !self.refusal.is_empty() {
            let _ = stream.try_write(self.refusal);
        }
        drop(stream);
        bump(&self.refused);
        if let Some(refused) = self.refusals.admit() {
            tracing::warn!(
                refused,
                port = self.port,
                max_connections = self.limits.cap,
                "connections refused: the server holds as many as it may"
            );
        }
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
