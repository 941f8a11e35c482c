//! The gRPC port: the same rules and answers as HTTP, backpressure, and streams at a stop.

use std::time::Duration;

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

use super::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sends_unary_and_streamed_with_the_same_rules_and_answers() -> Result<()> {
    use wagate::server::grpc::proto::SendRequest;

    let mut f = Fixture::start("grpc", "").await?;
    let people: Vec<String> = (1..=60).map(person).collect();
    f.ready_to_send(&people).await?;
    let mut client = f.grpc_client().await?;
    let send = |correlation: u64, body: &Value| SendRequest {
        correlation,
        phone_number_id: NUMBER_A.to_string(),
        request_json: body.to_string(),
        ..SendRequest::default()
    };

    let template = template_send(&people[0], "order_update", &["Ada"]);
    let ok = client
        .send(authorised(send(7, &template), ALPHA))
        .await?
        .into_inner();
    assert_eq!(
        (ok.correlation, ok.http_status),
        (7, 200),
        "{}",
        ok.body_json
    );
    assert!(ok.message_id.starts_with("wagate."), "{ok:?}");
    assert_eq!(ok.message_status, "accepted");
    let refused = client
        .send(authorised(send(8, &text_send(&people[1], "hi")), ALPHA))
        .await?
        .into_inner();
    assert_eq!((refused.http_status, refused.error_code), (400, 131_047));
    assert_eq!(refused.error_reason, "outside_service_window");
    let stranger = client
        .send(tonic::Request::new(send(9, &template)))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::Unauthenticated);

    // A stream of 50, one of them malformed: 50 results, in order, each matched.
    let requests: Vec<SendRequest> = (0..50u64)
        .map(|i| {
            let to = &people[10 + i as usize];
            if i == 25 {
                SendRequest {
                    correlation: i,
                    phone_number_id: NUMBER_A.to_string(),
                    request_json: "{not json".into(),
                    ..SendRequest::default()
                }
            } else {
                send(i, &template_send(to, "order_update", &["Bo"]))
            }
        })
        .collect();
    let stream = authorised(tokio_stream::iter(requests), ALPHA);
    let mut results = client.send_stream(stream).await?.into_inner();
    let mut seen = Vec::new();
    while let Some(result) = results.message().await? {
        seen.push(result);
    }
    assert_eq!(seen.len(), 50);
    for (i, result) in seen.iter().enumerate() {
        assert_eq!(result.correlation, i as u64);
        if i == 25 {
            assert_eq!((result.http_status, result.error_code), (400, 100));
        } else {
            assert_eq!(result.http_status, 200, "{}", result.body_json);
        }
    }
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 2 }))
        .await?;
    f.meta.wait_for(50, WAIT).await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_grpc_with_resource_exhausted() -> Result<()> {
    use wagate::server::grpc::proto::SendRequest;

    let mut f = Fixture::start("grpc-full", "[http]\nmax_pending_messages = 1\n").await?;
    let people: Vec<String> = (1..=200).map(person).collect();
    f.ready_to_send(&people).await?;
    let client = f.grpc_client().await?;
    let mut tasks = Vec::new();
    for to in &people {
        let mut client = client.clone();
        let request = authorised(
            SendRequest {
                phone_number_id: NUMBER_A.to_string(),
                request_json: template_send(to, "order_update", &["Ada"]).to_string(),
                ..SendRequest::default()
            },
            ALPHA,
        );
        tasks.push(tokio::spawn(async move { client.send(request).await }));
    }
    let (mut accepted, mut exhausted) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(result) => {
                assert_eq!(result.into_inner().http_status, 200);
                accepted += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
                assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
                exhausted += 1;
            }
        }
    }
    assert!(
        accepted > 0 && exhausted > 0,
        "{accepted} accepted, {exhausted} exhausted"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_grpc_streams_after_answering_what_they_sent() -> Result<()> {
    use wagate::server::grpc::proto::SendRequest;

    let (mut f, to) = Fixture::ready_for("grpc-stop", "", 14).await?;
    let (requests, waiting) = tokio::sync::mpsc::channel(8);
    let call = authorised(tokio_stream::wrappers::ReceiverStream::new(waiting), ALPHA);
    let mut results = f.grpc_client().await?.send_stream(call).await?.into_inner();
    requests
        .send(SendRequest {
            correlation: 1,
            phone_number_id: NUMBER_A.to_string(),
            request_json: template_send(&to, "order_update", &["Ada"]).to_string(),
            ..SendRequest::default()
        })
        .await?;
    let first = results.message().await?.expect("a result");
    assert_eq!((first.correlation, first.http_status), (1, 200));
    // The client keeps its side open; the server is asked to stop.
    let server = f.wagate.take().expect("running");
    server.terminate()?;
    let status = server.wait(Duration::from_secs(20))?;
    assert!(status.success(), "{status}");
    // The stream ended (or the connection closed) instead of holding the stop back.
    assert!(!matches!(results.message().await, Ok(Some(_))));
    drop(requests);
    Ok(())
}
