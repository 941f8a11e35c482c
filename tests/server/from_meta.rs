//! What Meta sends and answers: signed webhooks, limit and quality news, statuses that race
//! their send, upstream errors, and forwarding to tenants.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;

use super::{sent_while_meta_holds, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_with_a_bad_signature_change_nothing() -> Result<()> {
    let mut f = Fixture::start("signatures", "").await?;
    let to = person(7);
    let handshake = f
        .web
        .get(
            &f.url(
                "/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=8812",
            ),
            "",
        )
        .await?;
    assert_eq!(
        (handshake.status, handshake.text()),
        (200, "8812".to_string())
    );
    let wrong = f
        .web
        .get(
            &f.url("/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=8812"),
            "",
        )
        .await?;
    assert_eq!(wrong.status, 403);

    // An inbound message opens the window, but only when Meta signed it.
    let inbound = inbound_webhook(NUMBER_A, "wamid.in.1", "16505550007", "hello");
    let tampered = f
        .meta_webhook(
            &inbound,
            Some(&signature("not-the-secret", inbound.to_string().as_bytes())),
        )
        .await?;
    assert_eq!((tampered.status, tampered.code()), (401, Some(190)));
    let missing = f
        .web
        .request(
            hyper::Method::POST,
            &f.url("/webhooks/meta"),
            &[("content-type", "application/json")],
            inbound.to_string(),
        )
        .await?;
    assert_eq!(missing.status, 401);
    let reply = f
        .send(ALPHA, NUMBER_A, &text_send(&to, "thanks"), &[])
        .await?;
    assert_eq!(reply.code(), Some(131_047), "the window is still closed");

    let contact_url = f.url(&format!("/wagate/admin/contacts/{NUMBER_A}/{to}"));
    let contact = f.web.get(&contact_url, ADMIN).await?.json();
    assert_eq!(contact["window_open"], false, "{contact}");
    let good = f.meta_webhook(&inbound, None).await?;
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json()["applied"], 1);
    let contact = f.web.get(&contact_url, ADMIN).await?.json();
    assert_eq!(contact["window_open"], true, "{contact}");
    assert_eq!(contact["window_until"], START_UNIX + 86_400);
    let reply = f
        .send(ALPHA, NUMBER_A, &text_send(&to, "thanks"), &[])
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let forwarded = f.sink.wait_for(1, WAIT).await?;
    assert_eq!(
        forwarded[0].json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "hello"
    );

    // STOP from a person who had opted in opts them out: once the window has closed, a
    // template (business-initiated) is refused.
    let member = person(8);
    f.ready_to_send(std::slice::from_ref(&member)).await?;
    let template = template_send(&member, "order_update", &["x"]);
    assert_eq!(f.send(ALPHA, NUMBER_A, &template, &[]).await?.status, 200);
    let stop = inbound_webhook(NUMBER_A, "wamid.in.2", "16505550008", "STOP");
    assert_eq!(f.meta_webhook(&stop, None).await?.json()["applied"], 1);
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 90_000 }))
        .await?;
    let after = f.send(ALPHA, NUMBER_A, &template, &[]).await?;
    assert_eq!(after.code(), Some(470_001), "{}", after.text());
    assert_eq!(after.json()["error"]["wagate_reason"], "opted_out");
    let contact = f.contact(NUMBER_A, &member).await?;
    assert_eq!(
        (
            contact["opted_out"].clone(),
            contact["consent_source"].clone()
        ),
        (json!(true), json!("keyword"))
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_raising_the_business_limit_lifts_the_portfolio_from_250() -> Result<()> {
    let mut f = Fixture::start("capability", "[engine]\nprofile = \"whatsapp-2025\"\n").await?;
    let usage_url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage"));
    let tier = |usage: Value| (usage["tier"].clone(), usage["limit_24h"].clone());
    assert_eq!(
        tier(f.web.get(&usage_url, ADMIN).await?.json()),
        (json!("TIER_250"), json!(250))
    );
    // Meta granted 2K after its review (verification, or 2,000 unique template deliveries).
    let granted = account_webhook(
        "business_capability_update",
        json!({ "max_daily_conversations_per_business": "TIER_2K",
                "max_phone_numbers_per_business": 20 }),
    );
    let report = f.meta_webhook(&granted, None).await?.json();
    assert_eq!(
        (report["applied"].clone(), report["ignored"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(
        tier(f.web.get(&usage_url, ADMIN).await?.json()),
        (json!("TIER_2K"), json!(2_000))
    );
    // The legacy integer form names the same tiers.
    let legacy = account_webhook(
        "business_capability_update",
        json!({ "max_daily_conversation_per_phone": 10_000 }),
    );
    assert_eq!(f.meta_webhook(&legacy, None).await?.json()["applied"], 1);
    assert_eq!(
        tier(f.web.get(&usage_url, ADMIN).await?.json()),
        (json!("TIER_10K"), json!(10_000))
    );
    // Counts of numbers only, or a tier this profile does not have: nothing changes.
    for nothing in [
        json!({ "max_phone_numbers_per_business": 20 }),
        json!({ "max_daily_conversations_per_business": "TIER_1K" }),
    ] {
        let report = f
            .meta_webhook(
                &account_webhook("business_capability_update", nothing),
                None,
            )
            .await?
            .json();
        assert_eq!(report["ignored"], 1, "{report}");
    }
    assert_eq!(
        tier(f.web.get(&usage_url, ADMIN).await?.json()),
        (json!("TIER_10K"), json!(10_000))
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_and_account_news_from_meta_change_limits_and_restrictions() -> Result<()> {
    let mut f = Fixture::start("number-news", "").await?;
    let usage_url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage"));
    let news = |event: &str, limit: &str| {
        account_webhook(
            "phone_number_quality_update",
            json!({ "display_phone_number": DISPLAY_A.to_string(), "event": event,
                    "current_limit": limit }),
        )
    };
    assert_eq!(
        f.meta_webhook(&news("FLAGGED", "TIER_1K"), None)
            .await?
            .json()["applied"],
        1
    );
    let usage = f.web.get(&usage_url, ADMIN).await?.json();
    assert_eq!(usage["quality"], "RED");
    assert!(usage["flagged_since"].is_u64(), "{usage}");
    assert_eq!(
        f.meta_webhook(&news("UNFLAGGED", "TIER_1K"), None)
            .await?
            .json()["applied"],
        1
    );
    assert_eq!(
        f.meta_webhook(&news("UPGRADE", "TIER_10K"), None)
            .await?
            .json()["applied"],
        1
    );
    let usage = f.web.get(&usage_url, ADMIN).await?.json();
    assert_eq!(
        (usage["tier"].clone(), usage["limit_24h"].clone()),
        (json!("TIER_10K"), json!(10_000))
    );
    assert_eq!(usage["quality"], "GREEN");
    let stranger = account_webhook(
        "phone_number_quality_update",
        json!({ "display_phone_number": "15559999999", "event": "FLAGGED" }),
    );
    assert_eq!(f.meta_webhook(&stranger, None).await?.json()["ignored"], 1);

    // The account is disabled: its numbers stop business-initiated sends until reinstated.
    let to = person(5);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
    let request = template_send(&to, "order_update", &["Ada"]);
    let ban = |state: &str| {
        account_webhook(
            "account_update",
            json!({ "event": "DISABLED_UPDATE", "ban_info": { "waba_ban_state": state,
                    "waba_ban_date": "2026-01-02" } }),
        )
    };
    assert_eq!(
        f.meta_webhook(&ban("DISABLE"), None).await?.json()["applied"],
        1
    );
    let blocked = f
        .send(
            ALPHA,
            NUMBER_A,
            &request,
            &[("x-wagate-on-limit", "refuse")],
        )
        .await?;
    assert_eq!(
        (blocked.status, blocked.code()),
        (429, Some(368)),
        "{}",
        blocked.text()
    );
    assert!(f.web.get(&usage_url, ADMIN).await?.json()["restricted_until"].is_u64());
    assert_eq!(
        f.meta_webhook(&ban("REINSTATE"), None).await?.json()["applied"],
        1
    );
    let sent = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(sent.json()["messages"][0]["message_status"], "accepted");
    // Another account's numbers were not touched.
    let other = f
        .web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{NUMBER_B}/usage")),
            ADMIN,
        )
        .await?
        .json();
    assert_eq!(other["tier"], "TIER_1K");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_upstream_errors_are_retried_and_permanent_ones_recorded() -> Result<()> {
    use crate::support::meta_stub::Scripted;
    let mut f = Fixture::start("retries", "").await?;
    let (first, second) = (person(1), person(2));
    f.ready_to_send(&[first.clone(), second.clone()]).await?;
    let meta_error = |code: u32| Scripted::meta_error(400, code, "(#x) from the stand-in");
    f.meta.script([
        Scripted {
            status: 503,
            body: json!({}),
        },
        meta_error(130_429),
    ]);
    let answer = f.send_update(&first).await?;
    let id = answer.message_id();
    f.meta.wait_for(1, WAIT).await?;
    // Backoff is on wagate's clock (manual here): 2 s after the first failure, 4 after the second.
    let waiting = f
        .wait_message(&id, WAIT, |v| {
            v["status"] == "pending" && v["attempts"] == 1
        })
        .await?;
    assert!(
        waiting["error"].as_str().unwrap_or("").contains("503"),
        "{waiting}"
    );
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 3 }))
        .await?;
    f.meta.wait_for(2, WAIT).await?;
    f.wait_message(&id, WAIT, |v| {
        v["status"] == "pending" && v["attempts"] == 2
    })
    .await?;
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 5 }))
        .await?;
    let view = f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    assert_eq!(view["attempts"], 3);
    assert_eq!(f.meta.received().len(), 3);

    f.meta.script([meta_error(131_026)]);
    let answer = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&second, "order_update", &["Bo"]),
            &[],
        )
        .await?;
    let view = f
        .wait_message(&answer.message_id(), WAIT, |v| v["status"] == "failed")
        .await?;
    assert_eq!(view["attempts"], 1);
    assert!(
        view["error"].as_str().unwrap_or("").contains("131026"),
        "{view}"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_that_arrives_before_metas_answer_still_lands_on_its_message() -> Result<()> {
    let (mut f, id) = sent_while_meta_holds("early-status", 15).await?;
    // Meta holds its answer (it will say wamid.stub.0) but already reports the delivery.
    let early = status_webhook(NUMBER_A, "wamid.stub.0", "delivered", "16505550015");
    assert_eq!(f.meta_webhook(&early, None).await?.status, 200);
    assert_eq!(f.message(ALPHA, &id).await?.json()["status"], "in_flight");
    f.meta.release();
    let view = f
        .wait_message(&id, WAIT, |v| {
            v["status"] == "sent" && v["delivery"] == "delivered"
        })
        .await?;
    assert_eq!(view["upstream_id"], "wamid.stub.0");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_a_tenant_is_retried_and_survives_a_restart() -> Result<()> {
    use crate::support::meta_stub::Scripted;
    let mut f = Fixture::start("forwarding", "").await?;
    let failing = || Scripted {
        status: 500,
        body: json!({}),
    };
    f.sink.script([failing(), failing()]);
    let hello = inbound_webhook(NUMBER_A, "wamid.in.9", "16505550009", "hello");
    assert_eq!(f.meta_webhook(&hello, None).await?.status, 200);
    // Two failures, then the third attempt is taken: the same body, signed each time.
    let attempts = f.sink.wait_for(3, WAIT).await?;
    assert!(attempts.iter().all(|a| a.body == attempts[0].body));
    for attempt in &attempts {
        assert_eq!(
            attempt.header("x-hub-signature-256"),
            Some(signature(CALLBACK_SECRET, &attempt.body).as_str())
        );
    }
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics.contains("wagate_forward_failures_total 2"),
        "{metrics}"
    );

    // The tenant is down across a restart of wagate: the forward waits on disk.
    f.sink.script((0..1_000).map(|_| failing()));
    let later = inbound_webhook(NUMBER_A, "wamid.in.10", "16505550009", "are you there?");
    assert_eq!(f.meta_webhook(&later, None).await?.status, 200);
    f.sink.wait_for(4, WAIT).await?;
    f.stop()?;
    f.sink.clear_script();
    let before = f.sink.received().len();
    f.restart()?;
    let delivered = f.sink.wait_for(before + 1, WAIT).await?;
    let last = delivered.last().unwrap().json();
    assert_eq!(
        last["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "are you there?"
    );
    f.stop()
}

/// Meta's `messages` webhook for `number` with one inbound text per id in `ids`, each in a
/// change of its own (each change is one forward).
fn inbound_changes(number: u64, ids: std::ops::Range<u64>) -> Value {
    let changes: Vec<Value> = ids
        .map(|i| {
            json!({ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550001001",
                              "phone_number_id": number.to_string() },
                "contacts": [{ "profile": { "name": "Ada" }, "wa_id": "16505550009" }],
                "messages": [{ "from": "16505550009", "id": format!("wamid.in.{i}"),
                               "timestamp": START_UNIX.to_string(),
                               "type": "text", "text": { "body": format!("n{i}") } }]
            }})
        })
        .collect();
    json!({ "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": changes }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_callback_is_down_holds_back_no_other_tenant_s_forwards() -> Result<()> {
    use crate::support::meta_stub::{Scripted, Stub};
    const NUMBER_G: u64 = 3001;
    let gamma_sink = Stub::start().await?;
    let gamma = format!(
        r#"
[[tenants]]
name = "gamma"
token = "gamma-token-0123456789"
numbers = [{NUMBER_G}]
callback_url = "{}/hook"
callback_secret = "gamma-callback-secret"

[[numbers]]
id = {NUMBER_G}
account = 3
portfolio = 3
throughput_mps = 1000
"#,
        gamma_sink.url()
    );
    let mut f = Fixture::start("forward-fairness", &gamma).await?;
    // Alpha's callback fails every request: a backlog longer than a whole delivery round.
    let failing = || Scripted {
        status: 500,
        body: json!({}),
    };
    f.sink.script((0..100_000).map(|_| failing()));
    const BACKLOG: u64 = 1_500;
    for chunk in (0..BACKLOG).step_by(300) {
        let webhook = inbound_changes(NUMBER_A, chunk..chunk + 300);
        assert_eq!(f.meta_webhook(&webhook, None).await?.status, 200);
    }
    f.sink.wait_for(256, WAIT).await?;
    // Gamma's forward, queued behind all of alpha's, reaches gamma while alpha is down.
    let hello = inbound_webhook(NUMBER_G, "wamid.in.gamma", "16505550009", "hello gamma");
    assert_eq!(f.meta_webhook(&hello, None).await?.status, 200);
    let got = gamma_sink.wait_for(1, WAIT).await?;
    assert_eq!(
        got[0].json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "hello gamma"
    );
    assert_eq!(
        got[0].header("x-hub-signature-256"),
        Some(signature("gamma-callback-secret", &got[0].body).as_str())
    );
    // Alpha comes back: every one of its forwards arrives, and none waits any more.
    f.sink.clear_script();
    let text_of = |r: &crate::support::meta_stub::Received| {
        r.json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut arrived = std::collections::BTreeSet::new();
    let mut seen = 0;
    while (arrived.len() as u64) < BACKLOG {
        let received = f.sink.wait_for(seen + 1, Duration::from_secs(60)).await?;
        arrived.extend(received[seen..].iter().map(text_of));
        seen = received.len();
    }
    let expected: std::collections::BTreeSet<String> =
        (0..BACKLOG).map(|i| format!("n{i}")).collect();
    assert_eq!(arrived, expected);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
        if metric_value(&metrics, "wagate_forward_backlog") == Some(0.0) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "a backlog stays: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.stop()
}
