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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_people_messages_and_usage_answer_over_grpc_as_over_http() -> Result<()> {
    use wagate::server::grpc::proto::records_client::RecordsClient;
    use wagate::server::grpc::proto::{
        ConsentRequest, ContactRequest, EraseRequest, MessageRequest, UsageRequest,
    };

    let mut f = Fixture::start("grpc-records", "").await?;
    let ana = person(1);
    f.approved_template("order_update", "utility", ORDER_UPDATE)
        .await?;
    let channel = tonic::transport::Channel::from_shared(f.server().grpc.clone())?
        .connect()
        .await?;
    let mut records = RecordsClient::new(channel);
    let json_of = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let ana_s = || ContactRequest {
        phone_number_id: NUMBER_A.to_string(),
        to: ana.clone(),
    };
    let usage_of_a = || UsageRequest {
        phone_number_id: NUMBER_A.to_string(),
    };
    // An error's trace id is each request's own.
    let untraced = |mut answer: Value| {
        if let Some(error) = answer.get_mut("error").and_then(Value::as_object_mut) {
            error.remove("fbtrace_id");
        }
        answer
    };

    // Consent over gRPC, as the admin API takes it; then the person, as HTTP shows them.
    let opt_in = json!({ "phone_number_id": NUMBER_A.to_string(), "to": [ana.clone()],
                         "change": "opt_in" });
    let changed = records
        .change_consent(authorised(
            ConsentRequest {
                request_json: opt_in.to_string(),
            },
            ADMIN,
        ))
        .await?
        .into_inner();
    assert_eq!(
        (changed.http_status, json_of(&changed.body_json)),
        (200, json!({ "success": true, "changed": 1 }))
    );
    let contact = records
        .get_contact(authorised(ana_s(), ADMIN))
        .await?
        .into_inner();
    assert_eq!(contact.http_status, 200);
    let over_http = f.contact(NUMBER_A, &ana).await?;
    assert_eq!(json_of(&contact.body_json), over_http);
    assert_eq!(over_http["opted_in"], true);
    let history = records
        .get_consent_history(authorised(ana_s(), ADMIN))
        .await?
        .into_inner();
    let history_url = f.url(&format!(
        "/wagate/admin/contacts/{NUMBER_A}/{}/history",
        ana.trim_start_matches('+')
    ));
    let history_over_http = f.web.get(&history_url, ADMIN).await?.json();
    assert_eq!(json_of(&history.body_json), history_over_http);
    assert_eq!(history_over_http["events"][0]["change"], "opt_in");

    // A message's status and a number's usage: the same answers.
    let sent = f.send_update(&ana).await?;
    let id = sent.message_id();
    // Settled first, so both reads see the same state.
    f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    let message = records
        .get_message(authorised(
            MessageRequest {
                message_id: id.clone(),
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(message.http_status, 200, "{}", message.body_json);
    assert_eq!(
        json_of(&message.body_json),
        f.message(ALPHA, &id).await?.json()
    );
    let usage = records
        .get_usage(authorised(usage_of_a(), ADMIN))
        .await?
        .into_inner();
    let usage_url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage"));
    assert_eq!(
        json_of(&usage.body_json),
        f.web.get(&usage_url, ADMIN).await?.json()
    );

    // The same refusals: a tenant's token is no admin's; another tenant's message is not
    // theirs; a path trick stays one segment.
    let not_admin = records
        .get_usage(authorised(usage_of_a(), ALPHA))
        .await?
        .into_inner();
    let http_not_admin = f.web.get(&usage_url, ALPHA).await?;
    assert_eq!(not_admin.http_status, u32::from(http_not_admin.status));
    assert_eq!(
        untraced(json_of(&not_admin.body_json)),
        untraced(http_not_admin.json())
    );
    let foreign = records
        .get_message(authorised(
            MessageRequest {
                message_id: id.clone(),
            },
            BETA,
        ))
        .await?
        .into_inner();
    assert_eq!(
        foreign.http_status,
        u32::from(f.message(BETA, &id).await?.status)
    );
    assert_ne!(foreign.http_status, 200);
    let tricked = records
        .get_contact(authorised(
            ContactRequest {
                phone_number_id: NUMBER_A.to_string(),
                to: "../../numbers/1001/usage".into(),
            },
            ADMIN,
        ))
        .await?
        .into_inner();
    assert_eq!(tricked.http_status, 400, "{}", tricked.body_json);

    // Erasure over gRPC: the person is gone from the business, and the audit log says who asked.
    let erased = records
        .erase_person(authorised(
            EraseRequest {
                phone_number_id: NUMBER_A.to_string(),
                to: ana.clone(),
                by: "ticket 7".into(),
            },
            ADMIN,
        ))
        .await?
        .into_inner();
    assert_eq!(erased.http_status, 200, "{}", erased.body_json);
    assert_eq!(json_of(&erased.body_json)["erasure"]["messages"], 1);
    assert_eq!(f.contact(NUMBER_A, &ana).await?["opted_in"], false);
    let audit = f
        .web
        .get(&f.url("/wagate/admin/audit"), ADMIN)
        .await?
        .json();
    assert_eq!(audit["data"][0]["by"], "ticket 7", "{audit}");
    let by_a_tenant = records
        .erase_person(authorised(
            EraseRequest {
                phone_number_id: NUMBER_A.to_string(),
                to: ana.clone(),
                by: String::new(),
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(by_a_tenant.http_status, 403);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_read_and_started_over_grpc_as_over_http() -> Result<()> {
    use wagate::server::grpc::proto::records_client::RecordsClient;
    use wagate::server::grpc::proto::{CampaignChange, CampaignRequest, CreateCampaignRequest};

    let mut f = Fixture::start("grpc-campaigns", "").await?;
    let people: Vec<String> = (1..=3).map(person).collect();
    f.ready_to_send(&people[..2]).await?;
    let channel = tonic::transport::Channel::from_shared(f.server().grpc.clone())?
        .connect()
        .await?;
    let mut records = RecordsClient::new(channel);
    let json_of = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let audience = format!("to,name\n{}\n", people.join(",Ada\n") + ",Ada");
    let created = records
        .create_campaign(authorised(
            CreateCampaignRequest {
                phone_number_id: NUMBER_A.to_string(),
                template: "order_update".into(),
                name: "spring".into(),
                daily_cap: 100,
                audience: audience.into_bytes(),
                csv: true,
                ..Default::default()
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(created.http_status, 201, "{}", created.body_json);
    let created = json_of(&created.body_json);
    assert_eq!(created["audience"]["eligible"], 2, "{created}");
    assert_eq!(created["audience"]["excluded"]["no_opt_in"], 1, "{created}");
    assert_eq!(created["daily_cap"], 100, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let started = records
        .change_campaign(authorised(
            CampaignChange {
                campaign_id: id.clone(),
                action: "start".into(),
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(json_of(&started.body_json)["state"], "running");
    let over_http = f
        .web
        .get(&f.url(&format!("/wagate/v1/campaigns/{id}")), ALPHA)
        .await?
        .json();
    let over_grpc = records
        .get_campaign(authorised(
            CampaignRequest {
                campaign_id: id.clone(),
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(json_of(&over_grpc.body_json)["state"], over_http["state"]);
    assert_eq!(
        json_of(&over_grpc.body_json)["audience"],
        over_http["audience"]
    );
    // Another tenant's token finds nothing, as over HTTP.
    let other = records
        .get_campaign(authorised(CampaignRequest { campaign_id: id }, BETA))
        .await?
        .into_inner();
    assert_eq!(other.http_status, 400, "{}", other.body_json);
    f.stop()
}
