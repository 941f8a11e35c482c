//! Scheduled sends, reminders and validity periods on the manual clock: released at their
//! second and judged by the rules of that moment, listed, moved and cancelled until then;
//! a send whose validity ends first is never sent and its tenant is told.

use crate::support::fixture::*;
use crate::support::web::Answer;
use crate::WAIT;
use anyhow::Result;
use serde_json::{json, Value};

fn status_of(answer: &Answer) -> Value {
    answer.json()["messages"][0]["message_status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_sends_and_reminders_go_at_their_second_unless_moved_or_cancelled() -> Result<()>
{
    let mut f = Fixture::start("scheduled", "").await?;
    let people: Vec<String> = (1..=4).map(person).collect();
    f.ready_to_send(&people).await?;
    let update = |to: &str| template_send(to, "order_update", &["Ada"]);
    let at = START_UNIX + 3_600;
    let at_text = at.to_string();

    // One in an hour (the single endpoint's header).
    let scheduled = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&people[0]),
            &[("x-wagate-send-at", &at_text)],
        )
        .await?;
    assert_eq!(status_of(&scheduled), "queued", "{}", scheduled.text());
    // A reminder 24 h before an event, from a bulk line (RFC 3339 with its offset).
    let reminder = json!({ "phone_number_id": NUMBER_A.to_string(), "request": update(&people[1]),
        "remind_before": 86_400, "event_at": "2026-01-03T01:00:00+01:00" });
    // Two more: one moved, one cancelled.
    let line = |to: &str| {
        json!({ "phone_number_id": NUMBER_A.to_string(), "request": update(to),
                "send_at": "2026-01-01T01:00:00Z" })
    };
    let bulk = f
        .bulk(
            ALPHA,
            [reminder, line(&people[2]), line(&people[3])]
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .await?;
    let ids: Vec<String> = bulk
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|l| sent_id(&l["body"]))
        .collect();
    assert_eq!(ids.len(), 3, "{}", bulk.text());
    let (reminder_id, moved_id, cancelled_id) = (&ids[0], &ids[1], &ids[2]);

    // Listed in due order, with why they wait.
    let listed = f
        .web
        .get(
            &f.url(&format!("/wagate/v1/scheduled?phone_number_id={NUMBER_A}")),
            ALPHA,
        )
        .await?
        .json();
    let due: Vec<(String, u64, String)> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            (
                q["id"].as_str().unwrap_or_default().to_string(),
                q["queued_until"].as_u64().unwrap_or(0),
                q["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let reminder_at = START_UNIX + 86_400;
    assert_eq!(
        due,
        [
            (scheduled.message_id(), at, "scheduled".into()),
            (moved_id.clone(), at, "scheduled".into()),
            (cancelled_id.clone(), at, "scheduled".into()),
            (reminder_id.clone(), reminder_at, "scheduled".into()),
        ],
        "{listed}"
    );
    // Another tenant sees none of them, and cannot touch them.
    let foreign = f
        .web
        .get(
            &f.url(&format!("/wagate/v1/scheduled?phone_number_id={NUMBER_A}")),
            BETA,
        )
        .await?;
    assert_eq!(foreign.status, 400, "{}", foreign.text());
    let auth = |token: &str| format!("Bearer {token}");
    let cancel = |token: &'static str, id: &str| {
        let (web, url) = (f.web.clone(), f.url(&format!("/wagate/v1/messages/{id}")));
        async move {
            web.request(
                hyper::Method::DELETE,
                &url,
                &[("authorization", &auth(token))],
                "",
            )
            .await
        }
    };
    assert_eq!(cancel(BETA, cancelled_id).await?.status, 400);
    let cancelled = cancel(ALPHA, cancelled_id).await?;
    assert_eq!(
        cancelled.json()["status"],
        "cancelled",
        "{}",
        cancelled.text()
    );
    assert_eq!(
        cancel(ALPHA, cancelled_id).await?.json()["error"]["wagate_reason"],
        "not_queued"
    );
    let moved = f
        .web
        .request(
            hyper::Method::PATCH,
            &f.url(&format!("/wagate/v1/messages/{moved_id}")),
            &[
                ("authorization", &auth(ALPHA)),
                ("content-type", "application/json"),
            ],
            json!({ "send_at": at + 600 }).to_string(),
        )
        .await?;
    assert_eq!(moved.json()["queued_until"], at + 600, "{}", moved.text());

    // Nothing before its second; at it, the scheduled one goes (decided then).
    advance(&f, 3_599).await?;
    let view = f.message(ALPHA, &scheduled.message_id()).await?.json();
    assert_eq!(view["status"], "queued", "{view}");
    assert!(f.meta.received().is_empty());
    advance(&f, 1).await?;
    let view = f
        .wait_message(&scheduled.message_id(), WAIT, |v| v["status"] == "sent")
        .await?;
    assert_eq!(view["accepted_at"], at, "{view}");
    advance(&f, 600).await?;
    f.wait_message(moved_id, WAIT, |v| v["status"] == "sent")
        .await?;
    let view = f.message(ALPHA, cancelled_id).await?.json();
    assert_eq!(view["status"], "cancelled", "{view}");
    advance(&f, reminder_at - at - 600).await?;
    let view = f
        .wait_message(reminder_id, WAIT, |v| v["status"] == "sent")
        .await?;
    assert_eq!(view["accepted_at"], reminder_at, "{view}");
    assert_eq!(
        recipients_at_meta(&f, 3).await?,
        [people[0].clone(), people[2].clone(), people[1].clone()]
    );
    // The tenant heard of the first one from wagate: queued (until when, why), then released.
    let news: Vec<(String, Value)> = f
        .sink
        .received()
        .iter()
        .map(|r| r.json()["entry"][0]["changes"][0].clone())
        .filter(|change| change["field"] == "wagate_statuses")
        .map(|change| change["value"]["statuses"][0].clone())
        .filter(|status| status["id"] == scheduled.message_id().as_str())
        .map(|status| (status["status"].as_str().unwrap_or("").to_string(), status))
        .collect();
    let said: Vec<&str> = news.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(said, ["queued", "released"], "{news:?}");
    assert_eq!(
        (
            news[0].1["queued_until"].clone(),
            news[0].1["reason"].clone()
        ),
        (json!(at), json!("scheduled"))
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_validity_ends_first_is_never_sent_and_its_tenant_is_told() -> Result<()> {
    let mut f = Fixture::start("validity", "").await?;
    let people: Vec<String> = (1..=3).map(person).collect();
    f.ready_to_send(&people).await?;
    let update = |to: &str| template_send(to, "order_update", &["Ada"]);

    // Already past its validity: refused at once.
    let late = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&people[0]),
            &[("x-wagate-expire-at", "2025-12-31T23:00:00Z")],
        )
        .await?;
    assert_eq!(
        (late.status, late.code()),
        (400, Some(470_004)),
        "{}",
        late.text()
    );
    for (header, value) in [
        ("x-wagate-valid-for", "0"),
        ("x-wagate-send-at", "next tuesday"),
        ("x-wagate-remind-before", "60"),
    ] {
        let wrong = f
            .send(ALPHA, NUMBER_A, &update(&people[0]), &[(header, value)])
            .await?;
        assert_eq!((wrong.status, wrong.code()), (400, Some(100)), "{header}");
    }

    // Queued by a restriction with an hour's validity: the restriction lasts a day, so it is
    // dropped at its turn, never sent late, and its tenant is told why.
    let restriction = restriction_webhook();
    assert_eq!(
        f.meta_webhook(&restriction, None).await?.json()["applied"],
        1
    );
    let otp = f
        .send(
            ALPHA,
            NUMBER_A,
            &update(&people[1]),
            &[("x-wagate-valid-for", "3600")],
        )
        .await?;
    assert_eq!(status_of(&otp), "queued", "{}", otp.text());
    let listed = f.message(ALPHA, &otp.message_id()).await?.json();
    assert_eq!(listed["expire_at"], START_UNIX + 3_600, "{listed}");
    advance(&f, 86_400).await?;
    refused_at_its_turn(&f, &otp.message_id(), "expired").await?;
    let told = told_status(&f, &otp.message_id(), "failed").await?;
    assert_eq!(
        (
            told["errors"][0]["code"].clone(),
            told["wagate_reason"].clone()
        ),
        (json!(470_004), json!("expired")),
        "{told}"
    );

    // An authentication template queued without a validity lives its TTL (10 minutes by
    // default): the restriction outlasts it, so it is dropped too.
    f.approved_template("login_code", "authentication", "Your code is {{1}}.")
        .await?;
    assert_eq!(
        f.meta_webhook(&restriction_webhook(), None).await?.json()["applied"],
        1
    );
    let code = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&people[0], "login_code", &["123456"]),
            &[],
        )
        .await?;
    assert_eq!(status_of(&code), "queued", "{}", code.text());
    let queued = f.message(ALPHA, &code.message_id()).await?.json();
    assert_eq!(queued["expire_at"], START_UNIX + 86_400 + 600, "{queued}");

    // A free-form text scheduled past its window: judged when it comes due, refused then.
    let writes = f
        .meta_webhook(
            &inbound_webhook(NUMBER_A, "wamid.v.1", &people[2], "hi"),
            None,
        )
        .await?;
    assert_eq!(writes.json()["applied"], 1);
    let in_two_days = (START_UNIX + 86_400 + 2 * 86_400).to_string();
    let text = f
        .send(
            ALPHA,
            NUMBER_A,
            &text_send(&people[2], "See you"),
            &[("x-wagate-send-at", &in_two_days)],
        )
        .await?;
    assert_eq!(status_of(&text), "queued", "{}", text.text());
    advance(&f, 2 * 86_400).await?;
    let told = told_status(&f, &text.message_id(), "failed").await?;
    assert_eq!(told["wagate_reason"], "outside_service_window", "{told}");
    let told = told_status(&f, &code.message_id(), "failed").await?;
    assert_eq!(told["wagate_reason"], "expired", "{told}");
    assert!(f.meta.received().is_empty(), "nothing reached Meta");
    // Accepted, but its turn to go (its throughput slot: the second of two sent in the same
    // instant waits for the manual clock) comes after its validity: dropped at hand-over,
    // never sent late, its price given back.
    let mut brief = Vec::new();
    for who in [&people[1], &people[2]] {
        let sent = f
            .send(
                ALPHA,
                NUMBER_A,
                &update(who),
                &[("x-wagate-valid-for", "1")],
            )
            .await?;
        assert_eq!(status_of(&sent), "accepted", "{}", sent.text());
        brief.push(sent.message_id());
    }
    advance(&f, 5).await?;
    let view = f
        .wait_message(&brief[1], WAIT, |v| v["status"] == "failed")
        .await?;
    assert!(
        view["error"].as_str().unwrap_or("").starts_with("expired"),
        "{view}"
    );
    assert_eq!(view["price_micros"], 0, "{view}");
    let told = told_status(&f, &brief[1], "failed").await?;
    assert_eq!(told["errors"][0]["code"], 470_004, "{told}");
    assert_eq!(recipients_at_meta(&f, 1).await?, [people[1].clone()]);
    f.stop()
}
