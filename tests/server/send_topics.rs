//! A send may name its own consent topic (beside its template's): `X-Wagate-Topic` on the
//! single endpoint, `topic` on a bulk line and over gRPC. A person who withdrew the topic gets
//! none of it, a queued send keeps its topic across a restart, an unknown topic is refused.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_naming_a_topic_the_person_withdrew_is_refused_however_it_comes() -> Result<()> {
    use wagate::server::grpc::proto::SendRequest;

    let mut f = Fixture::start("send-topics", "[consent]\ntopics = [\"newsletter\"]\n").await?;
    let (ana, ben) = (person(1), person(2));
    f.ready_to_send(&[ana.clone(), ben.clone()]).await?;
    let withdrawn = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_A.to_string(), "to": ana, "change": "opt_out",
                    "topics": ["newsletter"] }),
        )
        .await?;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text());
    let update = |to: &str| template_send(to, "order_update", &["Ada"]);
    let reason = |answer: &crate::support::web::Answer| {
        answer.json()["error"]["wagate_reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // The single endpoint: the header names the topic.
    let named = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&ana),
            &[("x-wagate-topic", "newsletter")],
        )
        .await?;
    assert_eq!(named.status, 400, "{}", named.text());
    assert_eq!(
        (named.code(), reason(&named)),
        (Some(470_001), "topic_opted_out".into())
    );
    let unknown = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&ana),
            &[("x-wagate-topic", "sports")],
        )
        .await?;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, Some(100)),
        "{}",
        unknown.text()
    );
    let plain = f.send(ALPHA, NUMBER_A, &update(&ana), &[]).await?;
    assert_eq!(
        plain.status,
        200,
        "its template's own topic is utility: {}",
        plain.text()
    );

    // A bulk line names it beside its request.
    let line = |to: &str, topic: Option<&str>| {
        let mut line = json!({ "phone_number_id": NUMBER_A.to_string(), "request": update(to) });
        if let Some(topic) = topic {
            line["topic"] = json!(topic);
        }
        line.to_string()
    };
    let bulk = f
        .bulk(
            ALPHA,
            [
                line(&ana, Some("newsletter")),
                line(&ben, Some("newsletter")),
            ]
            .join("\n"),
        )
        .await?;
    let results: Vec<u64> = bulk
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["status"].as_u64())
        .collect();
    assert_eq!(results, [400, 200], "{}", bulk.text());

    // So does gRPC.
    let mut client = f.grpc_client().await?;
    let refused = client
        .send(authorised(
            SendRequest {
                correlation: 1,
                phone_number_id: NUMBER_A.to_string(),
                request_json: update(&ana).to_string(),
                topic: "newsletter".into(),
                ..SendRequest::default()
            },
            ALPHA,
        ))
        .await?
        .into_inner();
    assert_eq!(
        (refused.http_status, refused.error_reason.as_str()),
        (400, "topic_opted_out")
    );

    // A send queued with its topic keeps it across a restart: Ben withdraws the topic while
    // it waits, and it is refused when its turn comes.
    let restriction = restriction_webhook();
    advance(&f, 86_400).await?;
    assert_eq!(
        f.meta_webhook(&restriction, None).await?.json()["applied"],
        1
    );
    let queued = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&ben),
            &[("x-wagate-topic", "newsletter")],
        )
        .await?;
    assert_eq!(
        queued.json()["messages"][0]["message_status"],
        "queued",
        "{}",
        queued.text()
    );
    f.stop()?;
    f.restart()?;
    advance(&f, 86_500).await?;
    let withdrawn = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_A2.to_string(), "to": ben, "change": "opt_out",
                    "topics": ["newsletter"] }),
        )
        .await?;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text());
    advance(&f, 86_400).await?;
    refused_at_its_turn(&f, &queued.message_id(), "topic_opted_out").await?;
    f.stop()
}
