//! The server's rules against Meta's word and the person's, through its public API on the
//! manual clock: an opt-out stops what it withdraws for the whole business, inside the window
//! too; Meta's statuses, stops and limits are facts; what Meta refuses is neither charged nor
//! counted; capacity freed by time is never refused.

use std::time::Duration;

use crate::support::fixture::*;
use crate::support::meta_stub::Scripted;
use crate::support::web::Answer;
use anyhow::{bail, Result};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

const PROMO: &str = "Big sale {{1}}!";

/// A person writes `text` to `number`, as Meta reports it.
async fn writes(f: &Fixture, number: u64, wamid: &str, from: &str, text: &str) -> Result<()> {
    let answer = f
        .meta_webhook(&inbound_webhook(number, wamid, from, text), None)
        .await?;
    if answer.json()["applied"] != 1 {
        bail!("inbound not applied: {}", answer.text());
    }
    Ok(())
}

/// Meta's `user_preferences` webhook: the person stopped or resumed marketing.
async fn marketing_preference(f: &Fixture, from: &str, value: &str) -> Result<Answer> {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "user_preferences", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001001",
                          "phone_number_id": NUMBER_A.to_string() },
            "contacts": [{ "wa_id": from }],
            "user_preferences": [{ "wa_id": from, "detail": "User requested", "category":
                "marketing_messages", "value": value, "timestamp": START_UNIX }]
        }}]}]
    });
    f.meta_webhook(&body, None).await
}

/// Meta's `message_template_status_update` for a template of account 1.
async fn template_event(f: &Fixture, name: &str, event: &str) -> Result<Value> {
    let body = account_webhook(
        "message_template_status_update",
        json!({ "event": event, "message_template_id": 594_425_479_261_596_u64,
                "message_template_name": name, "message_template_language": "en_US",
                "reason": "NONE" }),
    );
    Ok(f.meta_webhook(&body, None).await?.json())
}

async fn template_quality(f: &Fixture, name: &str, score: &str) -> Result<Value> {
    let body = account_webhook(
        "message_template_quality_update",
        json!({ "previous_quality_score": "GREEN", "new_quality_score": score,
                "message_template_id": 594_425_479_261_596_u64,
                "message_template_name": name, "message_template_language": "en_US" }),
    );
    Ok(f.meta_webhook(&body, None).await?.json())
}

async fn usage(f: &Fixture, number: u64) -> Result<Value> {
    number_usage(f, number).await
}

/// Waits until the number's usage satisfies `done` (failures reach the shards after the
/// dispatcher has settled them).
async fn wait_usage(f: &Fixture, number: u64, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = usage(f, number).await?;
        if done(&view) {
            return Ok(view);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("usage did not get there: {view}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ledger's totals: (messages, micros).
async fn ledger(f: &Fixture) -> Result<(u64, u64)> {
    let rows = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    let rows = rows["rows"].as_array().cloned().unwrap_or_default();
    Ok(rows.iter().fold((0, 0), |(m, p), row| {
        (
            m + row["messages"].as_u64().unwrap_or(0),
            p + row["price_micros"].as_u64().unwrap_or(0),
        )
    }))
}

fn refusal(answer: &Answer) -> (Option<u64>, Value) {
    (
        answer.code(),
        answer.json()["error"]["wagate_reason"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_stops_templates_inside_the_window_from_every_number_of_the_business(
) -> Result<()> {
    let mut f = Fixture::start("truth-opt-out", "").await?;
    let (ana, queued_for) = (person(1), person(2));
    f.ready_to_send(&[ana.clone(), queued_for.clone()]).await?;
    let update = |to: &str| template_send(to, "order_update", &["Ada"]);

    // Ana sends STOP to the business's other number; a second later, inside the window the
    // STOP opened, neither number may send her a template; a free-form reply still goes.
    writes(&f, NUMBER_A2, "wamid.in.1", &ana, "STOP").await?;
    advance(&f, 1).await?;
    for number in [NUMBER_A2, NUMBER_A] {
        let refused = f.send(ALPHA, number, &update(&ana), &[]).await?;
        assert_eq!(
            refusal(&refused),
            (Some(470_001), json!("opted_out")),
            "{number}"
        );
    }
    let reply = f
        .send(
            ALPHA,
            NUMBER_A2,
            &text_send(&ana, "You are unsubscribed."),
            &[],
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // A send queued before the STOP (the number was restricted) is dropped with its reason
    // when its turn comes, not released.
    let restriction = restriction_webhook();
    assert_eq!(
        f.meta_webhook(&restriction, None).await?.json()["applied"],
        1
    );
    let queued = f.send(ALPHA, NUMBER_A, &update(&queued_for), &[]).await?;
    assert_eq!(queued.json()["messages"][0]["message_status"], "queued");
    writes(&f, NUMBER_A2, "wamid.in.2", &queued_for, "stop").await?;
    // Its turn comes when the restriction's 24 h are over.
    advance(&f, 86_400).await?;
    refused_at_its_turn(&f, &queued.message_id(), "opted_out").await?;
    // Its tenant is told as Meta tells a failure: a signed `failed` status, wagate's reason.
    let status = told_status(&f, &queued.message_id(), "failed").await?;
    assert_eq!(
        (
            status["status"].clone(),
            status["errors"][0]["code"].clone(),
            status["wagate_reason"].clone()
        ),
        (json!("failed"), json!(470_001), json!("opted_out")),
        "{status}"
    );
    // Signed like every forward.
    assert!(f.sink.received().iter().all(|r| {
        r.header("x-hub-signature-256") == Some(signature(CALLBACK_SECRET, &r.body).as_str())
    }));

    // START to the first number: templates from the second are welcome again.
    writes(&f, NUMBER_A, "wamid.in.3", &ana, "START").await?;
    advance(&f, 86_400).await?;
    let welcome = f.send(ALPHA, NUMBER_A2, &update(&ana), &[]).await?;
    assert_eq!(welcome.status, 200, "{}", welcome.text());
    // Nothing the STOPs withdrew reached Meta: the reply and this last template only.
    let sent = f.meta.wait_for(2, WAIT).await?;
    assert_eq!(sent.len(), 2);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_marketing_stop_holds_inside_the_window_and_only_metas_resume_ends_it() -> Result<()>
{
    let (mut f, ana) = Fixture::ready_for("truth-marketing-stop", "", 1).await?;
    f.approved_template("promo", "marketing", PROMO).await?;
    let promo = template_send(&ana, "promo", &["Ada"]);
    let update = template_send(&ana, "order_update", &["Ada"]);

    assert_eq!(
        marketing_preference(&f, &ana, "stop").await?.json()["applied"],
        1
    );
    writes(&f, NUMBER_A, "wamid.in.1", &ana, "where is my order?").await?;
    let refused = f.send(ALPHA, NUMBER_A, &promo, &[]).await?;
    assert_eq!(
        refusal(&refused),
        (Some(131_050), json!("marketing_opted_out"))
    );
    assert_eq!(f.send(ALPHA, NUMBER_A, &update, &[]).await?.status, 200);

    // The business's START is the business's word, not Meta's.
    writes(&f, NUMBER_A, "wamid.in.2", &ana, "START").await?;
    advance(&f, 86_400).await?;
    let refused = f.send(ALPHA, NUMBER_A, &promo, &[]).await?;
    assert_eq!(refused.code(), Some(131_050), "{}", refused.text());
    let contact = f.contact(NUMBER_A, &ana).await?;
    assert_eq!(
        (
            contact["meta_marketing_stopped"].clone(),
            contact["opted_in"].clone()
        ),
        (json!(true), json!(true))
    );

    assert_eq!(
        marketing_preference(&f, &ana, "resume").await?.json()["applied"],
        1
    );
    let sent = f.send(ALPHA, NUMBER_A, &promo, &[]).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_template_status_is_applied_whatever_the_profiles_table_lists() -> Result<()> {
    // whatsapp-2021's table has no approved -> paused or approved -> disabled.
    let (mut f, ana) = Fixture::ready_for("truth-template-2021", "", 1).await?;
    let request = template_send(&ana, "order_update", &["Ada"]);
    for (event, code, reason) in [
        ("PAUSED", 132_015, "template_paused"),
        ("DISABLED", 132_016, "template_disabled"),
        ("DELETED", 132_001, "template_not_approved"),
        // Every other status of Meta's that forbids a send (platform doc, section 4.2).
        ("PENDING_DELETION", 132_001, "template_not_approved"),
        ("ARCHIVED", 132_001, "template_not_approved"),
        ("LOCKED", 132_001, "template_not_approved"),
        ("LIMIT_EXCEEDED", 132_001, "template_not_approved"),
        ("REJECTED", 132_001, "template_not_approved"),
        ("PENDING", 132_001, "template_not_approved"),
        ("IN_APPEAL", 132_001, "template_not_approved"),
    ] {
        assert_eq!(
            template_event(&f, "order_update", event).await?["applied"],
            1
        );
        let refused = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        assert_eq!(refusal(&refused), (Some(code), json!(reason)), "{event}");
        assert_eq!(
            template_event(&f, "order_update", "REINSTATED").await?["applied"],
            1
        );
        let sent = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        assert_eq!(sent.status, 200, "after {event}: {}", sent.text());
    }
    // FLAGGED (negative feedback, at risk) still sends: only Meta's pause stops it.
    assert_eq!(
        template_event(&f, "order_update", "FLAGGED").await?["applied"],
        1
    );
    let flagged = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(flagged.status, 200, "flagged: {}", flagged.text());
    // An event wagate does not understand is counted and logged, not dropped in silence.
    let report = template_event(&f, "order_update", "SOMETHING_NEW").await?;
    assert_eq!(
        (report["applied"].clone(), report["ignored"].clone()),
        (json!(0), json!(1))
    );
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics.contains("wagate_webhook_events_ignored_total 1"),
        "{metrics}"
    );
    f.stop()?;

    // whatsapp-2025: Meta pauses three times and then reinstates; wagate's own ladder (a third
    // pause disables) must not outrun Meta's word.
    let mut f = Fixture::start(
        "truth-template-2025",
        "[engine]\nprofile = \"whatsapp-2025\"\n",
    )
    .await?;
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    for pause in 1..=3 {
        assert_eq!(
            template_event(&f, "order_update", "PAUSED").await?["applied"],
            1
        );
        let refused = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        assert_eq!(refused.code(), Some(132_015), "{}", refused.text());
        advance(&f, 7 * 3_600).await?;
        let after = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        if pause < 3 {
            // Within the ladder, the pause's length is the projected end.
            assert_eq!(after.status, 200, "{}", after.text());
        } else {
            // Beyond it wagate neither disables nor unpauses by itself: Meta says.
            assert_eq!(after.code(), Some(132_015), "{}", after.text());
        }
    }
    assert_eq!(
        template_event(&f, "order_update", "REINSTATED").await?["applied"],
        1
    );
    let reinstated = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(reinstated.status, 200, "{}", reinstated.text());
    // Low quality three times: wagate's own ladder disables, then Meta reinstates.
    for _ in 0..3 {
        template_quality(&f, "order_update", "RED").await?;
    }
    let refused = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(refused.code(), Some(132_016), "{}", refused.text());
    assert_eq!(
        template_event(&f, "order_update", "REINSTATED").await?["applied"],
        1
    );
    let sent = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_meta_refuses_or_never_delivers_is_neither_charged_nor_counted() -> Result<()> {
    let mut f = Fixture::start("truth-refunds", "").await?;
    let (ana, ben) = (person(1), person(2));
    f.ready_to_send(&[ana.clone(), ben.clone()]).await?;

    // Meta refuses the send outright (a parameter it does not take: nothing else changes).
    f.meta
        .script([Scripted::meta_error(400, 100, "(#100) Invalid parameter")]);
    // Held, so that Meta's refusal cannot come before the charge at acceptance is read.
    f.meta.hold();
    let refused = f.send_update(&ana).await?;
    assert_eq!(refused.json()["messages"][0]["message_status"], "accepted");
    let charged = ledger(&f).await?;
    assert_eq!(charged, (1, 50_000), "charged at acceptance");
    f.meta.release();
    advance(&f, 1).await?;
    let view = f
        .wait_message(&refused.message_id(), WAIT, |v| v["status"] == "failed")
        .await?;
    assert_eq!(view["price_micros"], 0, "{view}");
    wait_usage(&f, NUMBER_A, |u| u["unique_recipients_24h"] == 0).await?;
    assert_eq!(ledger(&f).await?, (0, 0));

    // Meta takes the next one, then reports that it could not be delivered.
    let taken = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&ben, "order_update", &["Bo"]),
            &[],
        )
        .await?;
    advance(&f, 1).await?;
    let view = f
        .wait_message(&taken.message_id(), WAIT, |v| v["status"] == "sent")
        .await?;
    assert_eq!(usage(&f, NUMBER_A).await?["unique_recipients_24h"], 1);
    let wamid = view["upstream_id"].as_str().unwrap().to_string();
    let failed = failed_status(&wamid, &ben);
    assert_eq!(f.meta_webhook(&failed, None).await?.json()["applied"], 1);
    // Meta retries its webhooks: the second copy takes back nothing more.
    assert_eq!(f.meta_webhook(&failed, None).await?.json()["repeats"], 1);
    let view = f.message(ALPHA, &taken.message_id()).await?.json();
    assert_eq!(
        (view["delivery"].clone(), view["price_micros"].clone()),
        (json!("failed"), json!(0))
    );
    assert_eq!(ledger(&f).await?, (0, 0));
    assert_eq!(usage(&f, NUMBER_A).await?["unique_recipients_24h"], 0);
    // And a restart reads the same from disk.
    f.stop()?;
    f.restart()?;
    assert_eq!(ledger(&f).await?, (0, 0));
    assert_eq!(usage(&f, NUMBER_A).await?["unique_recipients_24h"], 0);
    f.stop()
}

/// Meta's `messages` webhook saying the message it knows as `wamid` could not be delivered.
fn failed_status(wamid: &str, recipient: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001001",
                          "phone_number_id": NUMBER_A.to_string() },
            "statuses": [{ "id": wamid, "status": "failed", "timestamp": START_UNIX.to_string(),
                           "recipient_id": recipient,
                           "errors": [{ "code": 131_000, "title": "Something went wrong" }] }]
        }}]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_synchronous_refusals_pause_the_template_and_restrict_the_number() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("truth-sync-refusals", "", 1).await?;
    let (ben, cy) = (person(2), person(3));
    f.opt_in(NUMBER_A, &[ben.clone(), cy.clone()]).await?;
    f.approved_template("notice", "utility", "Notice {{1}}.")
        .await?;

    // Meta answers the send: the template is paused. Its next send is refused before Meta.
    f.meta.script([Scripted::meta_error(
        400,
        132_015,
        "(#132015) Template is paused",
    )]);
    let first = f.send_update(&ana).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&first, WAIT, |v| v["status"] == "failed")
        .await?;
    let held = f.send_update(&ben).await?;
    assert_eq!(held.code(), Some(132_015), "{}", held.text());
    assert_eq!(f.meta.received().len(), 1, "Meta was not asked again");

    // Meta answers: the number is blocked for its conduct (368). It is restricted at once:
    // business-initiated sends wait, however the tables count.
    f.meta.script([Scripted::meta_error(
        400,
        368,
        "(#368) Temporarily blocked for policies violations",
    )]);
    let notice = |to: &str| template_send(to, "notice", &["x"]);
    let second = f
        .send(ALPHA, NUMBER_A, &notice(&ben), &[])
        .await?
        .message_id();
    advance(&f, 1).await?;
    f.wait_message(&second, WAIT, |v| v["status"] == "failed")
        .await?;
    assert!(
        !usage(&f, NUMBER_A).await?["restricted_until"].is_null(),
        "the number is restricted"
    );
    let waits = f.send(ALPHA, NUMBER_A, &notice(&cy), &[]).await?;
    assert_eq!(
        waits.json()["messages"][0]["message_status"],
        "queued",
        "{}",
        waits.text()
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_meta_refuses_holds_its_sends_until_a_probe_finds_it_accepted() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("truth-token-refused", "", 1).await?;
    let ben = person(2);
    f.opt_in(NUMBER_A, std::slice::from_ref(&ben)).await?;
    let gauge = format!(r#"wagate_meta_token_refused{{number="{NUMBER_A}"}}"#);
    let refused_gauge = |metrics: &str| metric_value(metrics, &gauge);

    // Meta refuses wagate's token: the send waits (never fails) and the operator is told.
    f.meta.script([Scripted::meta_error(
        401,
        190,
        "Invalid OAuth access token - Cannot parse access token",
    )]);
    let first = f.send_update(&ana).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&first, WAIT, |v| {
        v["status"] == "pending" && v["error"].as_str().is_some_and(|e| e.contains("190"))
    })
    .await?;

    // The next send is held here: Meta is not asked with a token it refused.
    let second = f.send_update(&ben).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&second, WAIT, |v| {
        v["error"].as_str().is_some_and(|e| e.starts_with("held"))
    })
    .await?;
    assert_eq!(f.meta.received().len(), 1, "Meta was asked once");
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert_eq!(refused_gauge(&metrics), Some(1.0), "{metrics}");

    // A minute on, one send probes Meta; it takes it (the token was fixed on Meta's side), and
    // everything held goes.
    advance(&f, 61).await?;
    for id in [&first, &second] {
        f.wait_message(id, WAIT, |v| v["status"] == "sent").await?;
    }
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert_eq!(refused_gauge(&metrics), Some(0.0), "{metrics}");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_throttling_slows_the_pair_and_the_number_it_names() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("truth-throttling", "", 1).await?;
    let pair_rate = || Scripted::meta_error(400, 131_056, "(#131056) Pair rate limit hit");

    // 131056 twice for the same person: Meta's suggested wait grows (1 s, then 4 s).
    f.meta.script([pair_rate(), pair_rate()]);
    let first = f.send_update(&ana).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&first, WAIT, |v| {
        v["attempts"] == 1 && v["status"] == "pending"
    })
    .await?;
    advance(&f, 2).await?;
    f.meta.wait_for(2, WAIT).await?;
    f.wait_message(&first, WAIT, |v| {
        v["attempts"] == 2 && v["status"] == "pending"
    })
    .await?;
    // Another send to that person is held here, not refused by Meta a third time.
    let second = f.send_update(&ana).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&second, WAIT, |v| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("held: Meta refused this pair"))
    })
    .await?;
    assert_eq!(f.meta.received().len(), 2);
    // Once Meta's wait has passed, both go.
    advance(&f, 4).await?;
    for id in [&first, &second] {
        f.wait_message(id, WAIT, |v| v["status"] == "sent").await?;
    }

    // 130429: the number's throughput was reached: it is paced at half the rate from now on.
    let pace = format!(r#"wagate_upstream_pace_messages_per_second{{number="{NUMBER_A}"}}"#);
    let paced = |metrics: &str| metric_value(metrics, &pace);
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert_eq!(paced(&metrics), Some(1_000.0), "{metrics}");
    f.meta.script([Scripted::meta_error(
        400,
        130_429,
        "(#130429) Rate limit hit",
    )]);
    let third = f.send_update(&ana).await?.message_id();
    advance(&f, 1).await?;
    f.wait_message(&third, WAIT, |v| {
        v["error"].as_str().is_some_and(|e| e.contains("130429"))
    })
    .await?;
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert_eq!(paced(&metrics), Some(500.0), "{metrics}");
    advance(&f, 2).await?;
    f.wait_message(&third, WAIT, |v| v["status"] == "sent")
        .await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_meta_reports_before_its_own_answer_is_uncharged_when_the_answer_lands(
) -> Result<()> {
    let (mut f, id) = super::sent_while_meta_holds("truth-early-failure", 16).await?;
    assert_eq!(ledger(&f).await?, (1, 50_000));
    // Meta holds its answer (it will say wamid.stub.0) but already reports the failure.
    let failed = failed_status("wamid.stub.0", &person(16));
    assert_eq!(f.meta_webhook(&failed, None).await?.status, 200);
    f.meta.release();
    let view = f
        .wait_message(&id, WAIT, |v| {
            v["status"] == "sent" && v["delivery"] == "failed"
        })
        .await?;
    assert_eq!(view["price_micros"], 0, "{view}");
    assert_eq!(ledger(&f).await?, (0, 0));
    wait_usage(&f, NUMBER_A, |u| u["unique_recipients_24h"] == 0).await?;
    f.stop()
}

/// Sends to `people` in bulk; returns how many were accepted.
async fn bulk_accepted(f: &Fixture, people: &[String]) -> Result<usize> {
    let answer = f.bulk(ALPHA, bulk_of(people)).await?;
    if answer.status != 200 {
        bail!("bulk: {}", answer.text());
    }
    Ok(answer
        .text()
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|l| l["body"]["messages"][0]["message_status"] == "accepted")
        })
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_upgrade_wagate_computes_is_a_projection_until_meta_applies_it() -> Result<()> {
    let mut f = Fixture::start("truth-upgrade", "").await?;
    let people: Vec<String> = (1..=2_600).map(person).collect();
    f.ready_to_send(&people).await?;
    // 1,000 unique recipients a day (TIER_1K) for three days: 2,000 in 7 days earns 10K.
    let mut projected = None;
    for day in people.chunks(1_000) {
        for batch in day.chunks(100) {
            bulk_accepted(&f, batch).await?;
            let seen = usage(&f, NUMBER_A).await?;
            if projected.is_none() && !seen["projected_upgrade_at"].is_null() {
                projected = Some(seen);
            }
        }
        advance(&f, 86_400).await?;
    }
    let projected = projected.expect("the upgrade projected");
    assert_eq!(projected["projected_tier"], "TIER_10K");
    assert_eq!(
        (projected["tier"].clone(), projected["limit_24h"].clone()),
        (json!("TIER_1K"), json!(1_000))
    );
    // About a day after the criteria were met, Meta is expected to apply it.
    let expected_at = projected["projected_upgrade_at"].as_u64().unwrap();
    let now = f
        .admin("/wagate/admin/clock", json!({ "advance_secs": 0 }))
        .await?
        .json()["now_unix_secs"]
        .as_u64()
        .unwrap();
    assert!(expected_at > now - 2 * 86_400, "{projected}");

    // Still Meta's 1K: the 1,001st new person in 24 h waits, whatever wagate computed.
    let more: Vec<String> = (10_001..=11_001).map(person).collect();
    f.opt_in(NUMBER_A, &more).await?;
    assert_eq!(bulk_accepted(&f, &more).await?, 1_000);
    let after = usage(&f, NUMBER_A).await?;
    assert_eq!(
        (after["tier"].clone(), after["upgraded_at"].clone()),
        (json!("TIER_1K"), Value::Null)
    );

    // Meta's word raises the tier, and usage says when.
    let upgrade = account_webhook(
        "phone_number_quality_update",
        json!({ "display_phone_number": DISPLAY_A.to_string(), "event": "UPGRADE",
                "current_limit": "TIER_10K" }),
    );
    assert_eq!(f.meta_webhook(&upgrade, None).await?.json()["applied"], 1);
    let upgraded = usage(&f, NUMBER_A).await?;
    assert_eq!(
        (
            upgraded["tier"].clone(),
            upgraded["limit_24h"].clone(),
            upgraded["upgraded_at"].clone()
        ),
        (json!("TIER_10K"), json!(10_000), json!(now))
    );
    assert!(upgraded["projected_upgrade_at"].is_null());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_freed_by_time_is_never_refused_on_another_shard() -> Result<()> {
    // whatsapp-2025 starts at 250; every counted person sits on one shard, the newcomers on
    // the other, which has nothing of its own to expire when the day has passed.
    let mut f = Fixture::start(
        "truth-stale",
        "[engine]\nprofile = \"whatsapp-2025\"\nshards = 2\n",
    )
    .await?;
    let on_shard = |shard: usize| {
        (1..).map(person).filter(move |p| {
            let digits = p.trim_start_matches('+').parse::<u64>().unwrap();
            wagate::shard_context::shard_for(digits, 2) == shard
        })
    };
    let counted: Vec<String> = on_shard(0).take(250).collect();
    let newcomers: Vec<String> = on_shard(1).take(3).collect();
    f.ready_to_send(&counted).await?;
    f.opt_in(NUMBER_A, &newcomers).await?;
    assert_eq!(bulk_accepted(&f, &counted).await?, 250);
    let at_limit = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&newcomers[0], "order_update", &["Ada"]),
            &[("x-wagate-on-limit", "refuse")],
        )
        .await?;
    assert_eq!(at_limit.code(), Some(470_002), "{}", at_limit.text());
    advance(&f, 86_400).await?;
    for who in &newcomers {
        let sent = f
            .send(
                ALPHA,
                NUMBER_A,
                &template_send(who, "order_update", &["Ada"]),
                &[("x-wagate-on-limit", "refuse")],
            )
            .await?;
        assert_eq!(sent.status, 200, "{}", sent.text());
    }
    assert_eq!(usage(&f, NUMBER_A).await?["unique_recipients_24h"], 3);
    f.stop()
}

/// The operator's keywords in two languages, and tenant beta's own.
const KEYWORDS: &str = r#"
[consent.keywords.en]
opt_out = ["STOP"]
opt_in = ["START"]
marketing_opt_out = ["STOP PROMOTIONS"]

[consent.keywords.es]
opt_out = ["BAJA"]
opt_in = ["ALTA"]

[tenants.keywords.pt]
opt_out = ["PARE"]
opt_in = ["VOLTAR"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_per_language_and_tenant_match_the_whole_message_and_mean_what_they_say(
) -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("truth-keywords", KEYWORDS, 1).await?;
    f.approved_template("promo", "marketing", PROMO).await?;
    let promo = template_send(&ana, "promo", &["Ada"]);
    let update = template_send(&ana, "order_update", &["Ada"]);

    // A word inside a sentence is no keyword.
    writes(
        &f,
        NUMBER_A,
        "wamid.k.1",
        &ana,
        "please stop sending me these",
    )
    .await?;
    assert_eq!(f.send(ALPHA, NUMBER_A, &promo, &[]).await?.status, 200);
    // "Stop promotions" withdraws marketing only, inside the window too; START resumes.
    writes(&f, NUMBER_A, "wamid.k.2", &ana, "  Stop Promotions ").await?;
    let refused = f.send(ALPHA, NUMBER_A, &promo, &[]).await?;
    assert_eq!(refusal(&refused).0, Some(131_050), "{}", refused.text());
    assert_eq!(f.send(ALPHA, NUMBER_A, &update, &[]).await?.status, 200);
    writes(&f, NUMBER_A, "wamid.k.3", &ana, "start").await?;
    assert_eq!(f.send(ALPHA, NUMBER_A, &promo, &[]).await?.status, 200);
    // The Spanish list: BAJA stops everything from every number of the business.
    writes(&f, NUMBER_A, "wamid.k.4", &ana, "baja").await?;
    for number in [NUMBER_A, NUMBER_A2] {
        let refused = f.send(ALPHA, number, &update, &[]).await?;
        assert_eq!(
            refusal(&refused).1,
            json!("opted_out"),
            "{}",
            refused.text()
        );
    }
    writes(&f, NUMBER_A, "wamid.k.5", &ana, "ALTA").await?;
    assert_eq!(f.send(ALPHA, NUMBER_A, &update, &[]).await?.status, 200);

    // Tenant beta reads its own list: STOP is no keyword there, PARE is.
    f.approved_template_of(2, "order_update", "utility", ORDER_UPDATE)
        .await?;
    f.opt_in(NUMBER_B, std::slice::from_ref(&ana)).await?;
    writes(&f, NUMBER_B, "wamid.k.6", &ana, "STOP").await?;
    assert_eq!(
        f.send(BETA, NUMBER_B, &update, &[]).await?.status,
        200,
        "STOP is not beta's word"
    );
    writes(&f, NUMBER_B, "wamid.k.7", &ana, "Pare").await?;
    let refused = f.send(BETA, NUMBER_B, &update, &[]).await?;
    assert_eq!(
        refusal(&refused).1,
        json!("opted_out"),
        "{}",
        refused.text()
    );
    f.stop()
}

/// A third tenant whose people's consent is per number.
const PER_NUMBER: &str = r#"
[[tenants]]
name = "gamma"
token = "gamma-token-0123456789"
numbers = [3001, 3002]
consent_scope = "number"

[[numbers]]
id = 3001
account = 3
portfolio = 3
throughput_mps = 1000

[[numbers]]
id = 3002
account = 3
portfolio = 3
throughput_mps = 1000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_with_per_number_consent_keeps_each_number_s_opt_out_its_own() -> Result<()> {
    let mut f = Fixture::start("truth-per-number", PER_NUMBER).await?;
    let ana = person(1);
    f.approved_template_of(3, "order_update", "utility", ORDER_UPDATE)
        .await?;
    f.opt_in(3001, std::slice::from_ref(&ana)).await?;
    let update = template_send(&ana, "order_update", &["Ada"]);
    const GAMMA: &str = "gamma-token-0123456789";
    // Opted in through 3001 only: 3002 has no opt-in of its own.
    assert_eq!(f.send(GAMMA, 3001, &update, &[]).await?.status, 200);
    let refused = f.send(GAMMA, 3002, &update, &[]).await?;
    assert_eq!(
        refusal(&refused).1,
        json!("no_opt_in"),
        "{}",
        refused.text()
    );
    // A STOP to 3002 (after its own opt-in) stops 3002 only, across a restart.
    f.opt_in(3002, std::slice::from_ref(&ana)).await?;
    writes(&f, 3002, "wamid.pn.1", &ana, "STOP").await?;
    f.stop()?;
    f.restart()?;
    let refused = f.send(GAMMA, 3002, &update, &[]).await?;
    assert_eq!(
        refusal(&refused).1,
        json!("opted_out"),
        "{}",
        refused.text()
    );
    assert_eq!(f.send(GAMMA, 3001, &update, &[]).await?.status, 200);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_a_person_withdrew_holds_back_its_templates_through_the_admin_api() -> Result<()> {
    let (mut f, ana) =
        Fixture::ready_for("truth-topics", "[consent]\ntopics = [\"newsletter\"]\n", 1).await?;
    let created = f
        .admin(
            "/wagate/admin/templates",
            json!({ "account": 1, "name": "weekly", "language": "en_US",
                    "category": "utility", "body": ORDER_UPDATE, "topic": "newsletter" }),
        )
        .await?;
    assert_eq!(created.status, 200, "{}", created.text());
    for status in ["in_review", "approved"] {
        f.template_status("weekly", status).await?;
    }
    let stray = f
        .admin(
            "/wagate/admin/templates",
            json!({ "account": 1, "name": "stray", "language": "en_US",
                    "category": "utility", "body": ORDER_UPDATE, "topic": "sports" }),
        )
        .await?;
    assert_eq!(stray.status, 400, "a topic nobody named: {}", stray.text());
    let consent = |change: &str, topics: Value| {
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": ana, "change": change,
                "topics": topics })
    };
    let out = f
        .admin(
            "/wagate/admin/contacts/consent",
            consent("opt_out", json!(["Newsletter"])),
        )
        .await?;
    assert_eq!(out.status, 200, "{}", out.text());
    let weekly = template_send(&ana, "weekly", &["Ada"]);
    let refused = f.send(ALPHA, NUMBER_A2, &weekly, &[]).await?;
    assert_eq!(
        refusal(&refused),
        (Some(470_001), json!("topic_opted_out")),
        "{}",
        refused.text()
    );
    let update = template_send(&ana, "order_update", &["Ada"]);
    assert_eq!(f.send(ALPHA, NUMBER_A, &update, &[]).await?.status, 200);
    let contact = f.contact(NUMBER_A2, &ana).await?;
    assert_eq!(
        contact["withdrawn_topics"],
        json!(["newsletter"]),
        "{contact}"
    );
    // Across a restart; then an opt-in naming it resumes it.
    f.stop()?;
    f.restart()?;
    let refused = f.send(ALPHA, NUMBER_A, &weekly, &[]).await?;
    assert_eq!(refusal(&refused).1, json!("topic_opted_out"));
    let unknown = f
        .admin(
            "/wagate/admin/contacts/consent",
            consent("opt_out", json!(["sports"])),
        )
        .await?;
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    f.admin(
        "/wagate/admin/contacts/consent",
        consent("opt_in", json!(["newsletter"])),
    )
    .await?;
    assert_eq!(f.send(ALPHA, NUMBER_A, &weekly, &[]).await?.status, 200);
    f.stop()
}

/// A tenant that confirms an opt-out.
const CONFIRMING: &str = r#"
[[tenants]]
name = "delta"
token = "delta-token-0123456789"
numbers = [4001]
opt_out_confirmation = "You will get no more messages from us. Reply START to resume."

[[numbers]]
id = 4001
account = 4
portfolio = 4
throughput_mps = 1000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_by_keyword_is_confirmed_once_inside_the_window_it_opened() -> Result<()> {
    let mut f = Fixture::start("truth-confirmation", CONFIRMING).await?;
    let ana = person(1);
    writes(&f, 4001, "wamid.c.0", &ana, "please stop the music").await?;
    let stop = inbound_webhook(4001, "wamid.c.1", &ana, "STOP");
    assert_eq!(f.meta_webhook(&stop, None).await?.json()["applied"], 1);
    // Meta's retry of the same webhook is a repeat: no second confirmation.
    assert_eq!(f.meta_webhook(&stop, None).await?.json()["repeats"], 1);
    advance(&f, 1).await?;
    let asked = f.meta.wait_for(1, WAIT).await?;
    let body: Value = serde_json::from_slice(&asked[0].body)?;
    assert_eq!(asked[0].path, "/v23.0/4001/messages");
    assert_eq!(
        (
            body["type"].clone(),
            body["text"]["body"].clone(),
            body["to"].clone()
        ),
        (
            json!("text"),
            json!("You will get no more messages from us. Reply START to resume."),
            json!(ana.trim_start_matches('+'))
        )
    );
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert_eq!(
        metric_value(&metrics, "wagate_opt_out_confirmations_total"),
        Some(1.0),
        "{metrics}"
    );
    advance(&f, 5).await?;
    assert_eq!(f.meta.received().len(), 1, "one confirmation, nothing else");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consent_event_is_kept_in_the_person_s_history_across_a_restart() -> Result<()> {
    let (mut f, ana) =
        Fixture::ready_for("truth-history", "[consent]\ntopics = [\"newsletter\"]\n", 1).await?;
    let consent = |change: &str, topics: Option<Value>| {
        let mut body = json!({ "phone_number_id": NUMBER_A2.to_string(), "to": ana,
                               "change": change });
        if let Some(topics) = topics {
            body["topics"] = topics;
        }
        body
    };
    advance(&f, 60).await?;
    let mut with_proof = consent("opt_out", Some(json!(["newsletter"])));
    with_proof["source"] = json!("web_form");
    with_proof["evidence"] = json!({ "form_url": "https://shop.example/prefs",
        "wording": "Send me the weekly newsletter", "ip_address": "203.0.113.7" });
    let out = f
        .admin("/wagate/admin/contacts/consent", with_proof.clone())
        .await?;
    assert_eq!(out.status, 200, "{}", out.text());
    // Proof past its cap, or of a kind nobody keeps, is refused and changes nothing.
    let mut too_much = with_proof.clone();
    too_much["evidence"]["wording"] = json!("x".repeat(3_000));
    let mut unknown = with_proof.clone();
    unknown["evidence"]["shoe_size"] = json!("44");
    let mut made_up = with_proof;
    made_up["source"] = json!("carrier_pigeon");
    for refused in [too_much, unknown, made_up] {
        let answer = f.admin("/wagate/admin/contacts/consent", refused).await?;
        assert_eq!(answer.status, 400, "{}", answer.text());
    }
    advance(&f, 60).await?;
    writes(&f, NUMBER_A, "wamid.h.1", &ana, "STOP").await?;
    writes(&f, NUMBER_A, "wamid.h.2", &ana, "not a keyword").await?;
    marketing_preference(&f, &ana, "stop").await?;
    // The person's consent names the event each part of it rests on.
    let contact = f.contact(NUMBER_A2, &ana).await?;
    let set_by = |topic: &str| {
        (
            contact["set_by"][topic]["change"].clone(),
            contact["set_by"][topic]["source"].clone(),
        )
    };
    assert_eq!(
        set_by("all"),
        (json!("opt_out"), json!("keyword")),
        "{contact}"
    );
    assert_eq!(
        set_by("marketing"),
        (json!("marketing_opt_out"), json!("user_preferences"))
    );
    assert_eq!(set_by("newsletter"), (json!("opt_out"), json!("keyword")));
    f.stop()?;
    f.restart()?;
    // The manual clock starts again at its configured instant: move it past the others.
    advance(&f, 600).await?;
    f.admin("/wagate/admin/contacts/consent", consent("opt_in", None))
        .await?;
    let url = f.url(&format!(
        "/wagate/admin/contacts/{NUMBER_A}/{}/history",
        ana.trim_start_matches('+')
    ));
    let history = f.web.get(&url, ADMIN).await?.json();
    let events: Vec<(String, String, String, Value)> = history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["change"].as_str().unwrap_or_default().to_string(),
                e["source"].as_str().unwrap_or_default().to_string(),
                e["phone_number_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["topics"].clone(),
            )
        })
        .collect();
    let (a, a2) = (NUMBER_A.to_string(), NUMBER_A2.to_string());
    let event = |change: &str, source: &str, number: &str, topics: Value| {
        (
            change.to_string(),
            source.to_string(),
            number.to_string(),
            topics,
        )
    };
    assert_eq!(
        events,
        [
            event("opt_in", "api", &a, json!([])),
            event("topics_opt_out", "web_form", &a2, json!(["newsletter"])),
            event("opt_out", "keyword", &a, json!([])),
            event("marketing_opt_out", "user_preferences", &a, json!([])),
            event("opt_in", "api", &a2, json!([])),
        ],
        "{history}"
    );
    let times: Vec<u64> = history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["at"].as_u64())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(
        history["events"][1]["evidence"],
        json!({ "form_url": "https://shop.example/prefs",
                "wording": "Send me the weekly newsletter", "ip_address": "203.0.113.7" })
    );
    assert!(history["events"][0].get("evidence").is_none());
    assert_eq!(times[1], START_UNIX + 60, "{times:?}");
    // Another business's view of the same person is its own (empty).
    let other = f.url(&format!(
        "/wagate/admin/contacts/{NUMBER_B}/{}/history",
        ana.trim_start_matches('+')
    ));
    assert_eq!(f.web.get(&other, ADMIN).await?.json()["events"], json!([]));
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_s_consent_history_exports_as_ndjson_and_csv_streamed() -> Result<()> {
    let mut f = Fixture::start("truth-export", "").await?;
    // Many people, so the export takes many chunks.
    let people: Vec<String> = (1..=3_000).map(person).collect();
    f.opt_in(NUMBER_A, &people).await?;
    let mut proof = json!({ "phone_number_id": NUMBER_A.to_string(), "to": people[0],
        "change": "opt_out", "source": "paper",
        "evidence": { "document": "form 17, \"signed\"" } });
    f.admin("/wagate/admin/contacts/consent", proof.clone())
        .await?;
    proof["to"] = json!(person(9_999));
    f.admin("/wagate/admin/contacts/consent", proof).await?;
    let export = |query: &str| f.url(&format!("/wagate/admin/consent/export?{query}"));

    let ndjson = f
        .web
        .get(&export(&format!("phone_number_id={NUMBER_A}")), ADMIN)
        .await?;
    assert_eq!(ndjson.status, 200);
    let lines: Vec<Value> = ndjson
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    assert_eq!(lines.len(), 3_002, "every event, once");
    assert!(lines.iter().all(|l| l["change"].is_string()));
    let paper: Vec<&Value> = lines.iter().filter(|l| l["source"] == "paper").collect();
    assert_eq!(paper.len(), 2);
    assert_eq!(paper[0]["evidence"]["document"], "form 17, \"signed\"");

    // One person, as CSV: the header, their opt-in, their opt-out with its proof quoted.
    let one = people[0].trim_start_matches('+');
    let csv = f
        .web
        .get(
            &export(&format!("phone_number_id={NUMBER_A}&to={one}&format=csv")),
            ADMIN,
        )
        .await?
        .text();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "to,at,phone_number_id,change,topics,source,evidence"
    );
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with(&format!("{one},")) && rows[1].contains(",opt_in,,api,"));
    assert!(
        rows[2].ends_with(r#",opt_out,,paper,"{""document"":""form 17, \""signed\""""}""#),
        "{csv}"
    );

    // Bad asks in Meta's error shape; another tenant's token is no admin's.
    for (query, token, status) in [
        (format!("phone_number_id={NUMBER_A}&format=xml"), ADMIN, 400),
        (format!("phone_number_id={NUMBER_A}&shoe=44"), ADMIN, 400),
        ("phone_number_id=777".to_string(), ADMIN, 400),
        (format!("phone_number_id={NUMBER_A}"), ALPHA, 403),
    ] {
        let answer = f.web.get(&export(&query), token).await?;
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert!(answer.json()["error"]["code"].is_u64(), "{}", answer.text());
    }
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_import_applies_each_good_row_wholly_and_answers_each_bad_one() -> Result<()> {
    let mut f = Fixture::start("truth-import", "[consent]\ntopics = [\"newsletter\"]\n").await?;
    let (ana, ben, cy) = (person(1), person(2), person(3));
    let ndjson = [
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": ana, "change": "opt_in",
                "source": "web_form", "evidence": { "form_url": "https://shop.example/join" } })
        .to_string(),
        "{ not json".to_string(),
        // Two people, one of them no number: the row changes neither.
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": [ben, "12"], "change": "opt_in" })
            .to_string(),
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": cy, "change": "opt_out",
                "topics": ["sports"] })
        .to_string(),
        json!({ "phone_number_id": "777", "to": cy, "change": "opt_in" }).to_string(),
        String::new(),
        json!({ "phone_number_id": NUMBER_A.to_string(), "to": [ben, cy], "change": "opt_in",
                "topics": ["newsletter"] })
        .to_string(),
    ]
    .join("\n");
    let import = |content_type: &'static str, body: String| {
        let (web, url) = (f.web.clone(), f.url("/wagate/admin/consent/import"));
        async move {
            web.request(
                hyper::Method::POST,
                &url,
                &[
                    ("content-type", content_type),
                    ("authorization", &format!("Bearer {ADMIN}")),
                ],
                body,
            )
            .await
        }
    };
    let answer = import("application/x-ndjson", ndjson).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines: Vec<Value> = answer
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    let refused: Vec<u64> = lines.iter().filter_map(|l| l["line"].as_u64()).collect();
    assert_eq!(refused, [2, 3, 4, 5], "{}", answer.text());
    assert_eq!(
        lines.last().cloned(),
        Some(json!({ "applied": 2, "refused": 4 }))
    );
    assert_eq!(
        f.contact(NUMBER_A, &ana).await?["consent_source"],
        "web_form"
    );
    assert_eq!(
        f.contact(NUMBER_A, &ben).await?["opted_in"],
        true,
        "the last row"
    );
    let history = f
        .web
        .get(
            &f.url(&format!(
                "/wagate/admin/contacts/{NUMBER_A}/{}/history",
                ana.trim_start_matches('+')
            )),
            ADMIN,
        )
        .await?
        .json();
    assert_eq!(
        history["events"][0]["evidence"]["form_url"],
        "https://shop.example/join"
    );

    // CSV: the header first; a bad row answered, the good one applied.
    let csv = format!(
        "phone_number_id,to,change,topics,source,evidence\n\
         {NUMBER_A},{dee},opt_out,newsletter,paper,\"{{\"\"document\"\":\"\"form 9\"\"}}\"\n\
         {NUMBER_A},{dee},maybe,,,\n",
        dee = person(4)
    );
    let answer = import("text/csv", csv).await?;
    assert_eq!(
        answer.text().lines().last(),
        Some(r#"{"applied":1,"refused":1}"#),
        "{}",
        answer.text()
    );
    let dee = f.contact(NUMBER_A, &person(4)).await?;
    assert_eq!(dee["withdrawn_topics"], json!(["newsletter"]));
    assert_eq!(
        import("text/csv", "to,change\n".into()).await?.status,
        400,
        "a CSV without its header"
    );
    assert_eq!(import("text/plain", String::new()).await?.status, 415);
    f.stop()
}
