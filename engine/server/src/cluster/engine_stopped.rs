//! Telling a partition engine that stopped from one that failed, by how a node's request to it
//! ended: a stopping engine closes the connections that hold no request in hand, so a request
//! sent on one as it closes ends with the connection closed and no answer, the request never
//! taken. (Whether the partition also left the node is the caller's to ask.)

use hyper_util::client::legacy::Error;

/// Whether the request's connection closed before any answer came (or the request was dropped
/// unsent): what a request meets on a connection its engine closed as it stopped. Closed with
/// the request's bytes unread, the connection is reset rather than ended: both count.
pub(crate) fn closed_unanswered(error: &Error) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                return true;
            }
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn ask(address: std::net::SocketAddr) -> Result<(), Error> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = hyper::Request::post(format!("http://{address}/v23.0/1/messages"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("a request");
        tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .expect("an end within 10 s")
            .map(drop)
    }

    /// A loopback engine that takes one connection and does `then` with it: its address.
    async fn engine_that<F, Fut>(then: F) -> std::net::SocketAddr
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            then(socket).await;
        });
        address
    }

    /// Reads what the request sent (enough of it for these tests).
    async fn read_request(socket: &mut tokio::net::TcpStream) {
        let mut read = [0u8; 1024];
        let _ = socket.read(&mut read).await;
    }

    #[tokio::test]
    async fn a_connection_closed_unanswered_is_told_from_an_answer_cut_short() {
        // Closed with the request read and no answer: what a stopping engine does to a
        // connection holding no request in hand.
        let address =
            engine_that(|mut socket| async move { read_request(&mut socket).await }).await;
        let error = ask(address).await.expect_err("no answer");
        assert!(closed_unanswered(&error), "{error:?}");

        // Reset with the request unread.
        let address = engine_that(|socket| async move {
            // A linger of zero resets the connection on drop, at once: nothing blocks, which
            // is what the deprecation warns of.
            #[allow(deprecated)]
            socket.set_linger(Some(Duration::ZERO)).unwrap();
        })
        .await;
        let error = ask(address).await.expect_err("reset");
        assert!(closed_unanswered(&error), "{error:?}");

        // An answer begun and cut short is an engine that failed part way, not one that
        // stopped: the request may have been taken.
        let address = engine_that(|mut socket| async move {
            read_request(&mut socket).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"mess")
                .await;
        })
        .await;
        let answered = ask(address).await;
        assert!(answered.is_ok(), "the head came: {answered:?}");

        // Nobody listening: a connect error, which the caller tells apart itself.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = ask(address).await.expect_err("nobody listens");
        assert!(
            error.is_connect() && !closed_unanswered(&error),
            "{error:?}"
        );
    }
}
