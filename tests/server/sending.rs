//! Sending as a sender does: single and bulk, Meta's codes for every refusal, the tier limit's queue,
//! idempotent retries, a full server, tenants kept apart.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

use super::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_accepted_dispatched_and_its_status_forwarded_signed() -> Result<()> {
    let (mut f, to) = Fixture::ready_for("e2e", "", 1).await?;
    let request = template_send(&to, "order_update", &["Ada"]);
    let answer = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], to.as_str());
    assert_eq!(body["contacts"][0]["wa_id"], "16505550001");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let id = answer.message_id();

    // Dispatched to Meta exactly as the sender wrote it, with wagate's access token.
    let sent = f.meta.wait_for(1, WAIT).await?;
    assert_eq!(sent[0].path, format!("/v23.0/{NUMBER_A}/messages"));
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {META_TOKEN}").as_str())
    );
    assert_eq!(sent[0].json(), request);
    let view = f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    assert_eq!(view["upstream_id"], "wamid.stub.0");
    assert_eq!(view["category"], "utility");

    // Meta reports delivery; the message records it and the tenant hears of it, signed.
    let webhook = status_webhook(NUMBER_A, "wamid.stub.0", "delivered", "16505550001");
    let applied = f.meta_webhook(&webhook, None).await?;
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(applied.json()["applied"], 1);
    let view = f.message(ALPHA, &id).await?.json();
    assert_eq!(view["delivery"], "delivered");
    let forwarded = f.sink.wait_for(1, WAIT).await?;
    assert_eq!(forwarded[0].path, "/hook");
    assert_eq!(
        forwarded[0].header("x-hub-signature-256"),
        Some(signature(CALLBACK_SECRET, &forwarded[0].body).as_str())
    );
    let status = &forwarded[0].json()["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(
        status["id"],
        id.as_str(),
        "the tenant sees the id it was given"
    );
    assert_eq!(status["wamid"], "wamid.stub.0");
    assert_eq!(status["status"], "delivered");

    // Meta's retry of the same webhook is applied once.
    let again = f.meta_webhook(&webhook, None).await?;
    assert_eq!(
        (
            again.json()["applied"].clone(),
            again.json()["repeats"].clone()
        ),
        (json!(0), json!(1))
    );

    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    assert_eq!(ledger["rows"][0]["messages"], 1);
    assert_eq!(ledger["rows"][0]["category"], "utility");
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics.contains("wagate_messages_accepted_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wagate_upstream_sent_total 1"),
        "{metrics}"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_metas_code_and_nothing_is_sent() -> Result<()> {
    let mut f = Fixture::start("refusals", "").await?;
    let (consented, stranger, promo_stopped) = (person(1), person(2), person(3));
    f.ready_to_send(&[consented.clone(), promo_stopped.clone()])
        .await?;
    f.approved_template("sale", "marketing", "Hi {{1}}, 20% off today.")
        .await?;
    f.approved_template("disabled_one", "utility", "Notice {{1}}.")
        .await?;
    // Under the 2021 rules a flagged template not recovered in 7 days is disabled.
    assert_eq!(
        f.template_status("disabled_one", "flagged").await?.status,
        200
    );
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 8 * 86_400 }))
        .await?;
    assert_eq!(
        f.template_status("disabled_one", "disabled").await?.status,
        200
    );
    let stop = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_A.to_string(), "to": promo_stopped, "change": "marketing_opt_out" }),
        )
        .await?;
    assert_eq!(stop.status, 200, "{}", stop.text());

    let cases: Vec<(Value, u64, &str)> = vec![
        (
            text_send(&consented, "hi"),
            131_047,
            "outside_service_window",
        ),
        (
            template_send(&promo_stopped, "sale", &["Ada"]),
            131_050,
            "marketing_opted_out",
        ),
        (
            template_send(&consented, "order_update", &[]),
            132_000,
            "parameter_count",
        ),
        (
            template_send(&consented, "no_such_template", &["x"]),
            132_001,
            "template_not_found",
        ),
        (
            template_send(&consented, "disabled_one", &["x"]),
            132_016,
            "template_disabled",
        ),
        (
            template_send(&stranger, "order_update", &["x"]),
            470_001,
            "no_opt_in",
        ),
        (
            json!({ "messaging_product": "whatsapp", "to": consented, "type": "text",
                    "text": { "body": "x" }, "colour": "red" }),
            100,
            "invalid_parameter",
        ),
        (text_send("12", "x"), 100, "invalid_parameter"),
        (
            json!({ "messaging_product": "whatsapp", "to": consented, "type": "hologram" }),
            131_051,
            "unsupported_type",
        ),
        (
            json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "x" } }),
            131_008,
            "missing_parameter",
        ),
    ];
    for (request, code, reason) in cases {
        let answer = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        let error = &answer.json()["error"];
        assert_eq!(answer.code(), Some(code), "{request} -> {}", answer.text());
        assert_eq!(error["wagate_reason"], reason, "{request}");
        assert_eq!(error["type"], "OAuthException");
        assert!(error["fbtrace_id"].is_string());
        assert!(error["error_data"]["details"].is_string());
    }

    // Malformed transport: bad JSON, wrong content type, oversized, unknown number.
    let url = f.url(&format!("/v23.0/{NUMBER_A}/messages"));
    let auth = format!("Bearer {ALPHA}");
    let raw = |body: &'static str, content_type: &'static str| {
        let (web, url, auth) = (f.web.clone(), url.clone(), auth.clone());
        async move {
            web.request(
                hyper::Method::POST,
                &url,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", content_type),
                ],
                body,
            )
            .await
        }
    };
    let broken = raw("{\"to\":", "application/json").await?;
    assert_eq!((broken.status, broken.code()), (400, Some(100)));
    let form = raw("to=1", "application/x-www-form-urlencoded").await?;
    assert_eq!((form.status, form.code()), (415, Some(100)));
    let huge = text_send(&consented, &"x".repeat(2 << 20));
    let oversized = f.send(ALPHA, NUMBER_A, &huge, &[]).await?;
    assert_eq!((oversized.status, oversized.code()), (413, Some(100)));
    let unknown = f.send(ALPHA, 999, &text_send(&consented, "x"), &[]).await?;
    assert_eq!((unknown.status, unknown.code()), (400, Some(100)));

    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    assert_eq!(ledger["rows"], json!([]), "nothing was accepted");
    assert!(f.meta.received().is_empty(), "nothing went to Meta");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_goes_to_meta_as_written_and_every_line_is_answered() -> Result<()> {
    let mut f = Fixture::start("bulk-lines", "").await?;
    let people: Vec<String> = (1..=2).map(person).collect();
    f.ready_to_send(&people).await?;
    // Valid JSON, but not as serde would write it: spaces around every separator.
    let written = template_send(&people[0], "order_update", &["Ada"])
        .to_string()
        .replace("\":", "\" : ")
        .replace(",\"", ", \"");
    let number = NUMBER_A.to_string();
    let bulk = format!(
        "{{\"phone_number_id\":\"{number}\",\"request\": {written} }}\n\
         {}\n\
         {{\"phone_number_id\":\"{number}\"}}\n",
        json!({ "phone_number_id": number,
                "request": template_send("not a number", "order_update", &["Bo"]) })
    );
    let answer = f.bulk(ALPHA, bulk).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines: Vec<Value> = answer
        .text()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let shape: Vec<(Value, Value)> = lines
        .iter()
        .map(|l| (l["line"].clone(), l["status"].clone()))
        .collect();
    assert_eq!(
        shape,
        [
            (json!(0), json!(200)),
            (json!(1), json!(400)),
            (json!(2), json!(400))
        ]
    );
    let accepted = &lines[0]["body"];
    assert_eq!(accepted["contacts"][0]["input"], people[0]);
    assert_eq!(accepted["messages"][0]["message_status"], "accepted");
    assert!(accepted["messages"][0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("wagate.")));
    assert_eq!(lines[1]["body"]["error"]["code"], 100);
    assert_eq!(lines[2]["body"]["error"]["code"], 100);
    assert!(lines[2]["body"].to_string().contains("not a bulk line"));
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 2 }))
        .await?;
    let sent = f.meta.wait_for(1, WAIT).await?;
    assert_eq!(
        sent[0].body,
        written.as_bytes(),
        "Meta gets the request as written"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_tier_limit_sends_queue_and_go_when_the_window_frees() -> Result<()> {
    let mut f = Fixture::start("tier", "").await?;
    let people: Vec<String> = (1..=1_001).map(person).collect();
    f.ready_to_send(&people).await?;
    let answer = f.bulk(ALPHA, bulk_of(&people[..1_000])).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines: Vec<Value> = answer
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1_000);
    assert!(lines.iter().all(|l| l["status"] == 200), "{}", lines[0]);
    // The number's throughput spreads the 1,000 over a second of the (manual) clock.
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 2 }))
        .await?;
    f.meta.wait_for(1_000, WAIT).await?;

    // The 1,001st unique recipient in 24 h: refused when asked, queued by default.
    let last = template_send(&people[1_000], "order_update", &["Bo"]);
    let refused = f
        .send(ALPHA, NUMBER_A, &last, &[("x-wagate-on-limit", "refuse")])
        .await?;
    assert_eq!((refused.status, refused.code()), (429, Some(470_002)));
    let retry_after: u64 = refused.headers["retry-after"].to_str()?.parse()?;
    assert!(
        retry_after > 86_000 && retry_after <= 86_400,
        "{retry_after}"
    );
    let queued = f.send(ALPHA, NUMBER_A, &last, &[]).await?;
    assert_eq!(queued.status, 200, "{}", queued.text());
    assert_eq!(queued.json()["messages"][0]["message_status"], "queued");
    let id = queued.message_id();
    let view = f.message(ALPHA, &id).await?.json();
    assert_eq!(view["status"], "queued");
    assert_eq!(view["reason"], "tier_limit");
    let usage = f
        .web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage")),
            ADMIN,
        )
        .await?
        .json();
    assert_eq!(usage["unique_recipients_24h"], 1_000);
    assert_eq!(usage["limit_24h"], 1_000);

    // A day later the window has room again: the queued send goes, under the same id.
    let moved = f
        .admin("/wagate/admin/clock", json!({ "advance_secs": 86_400 }))
        .await?;
    assert_eq!(moved.json()["now_unix_secs"], START_UNIX + 2 + 86_400);
    let sent = f.meta.wait_for(1_001, WAIT).await?;
    assert_eq!(
        sent[1_000].body,
        last.to_string().as_bytes(),
        "queued, kept packed, it goes to Meta byte for byte as written"
    );
    f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_use_each_others_numbers_or_messages() -> Result<()> {
    let (mut f, to) = Fixture::ready_for("tenants", "", 9).await?;
    let request = template_send(&to, "order_update", &["Ada"]);
    let mine = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(mine.status, 200);
    let id = mine.message_id();

    let theirs = f.send(BETA, NUMBER_A, &request, &[]).await?;
    let nonexistent = f.send(BETA, 4242, &request, &[]).await?;
    assert_eq!((theirs.status, theirs.code()), (400, Some(100)));
    assert_eq!(
        theirs.json()["error"]["error_data"]["details"]
            .as_str()
            .map(|d| d.replace(&NUMBER_A.to_string(), "N")),
        nonexistent.json()["error"]["error_data"]["details"]
            .as_str()
            .map(|d| d.replace("4242", "N")),
        "another tenant's number looks exactly like a number that does not exist"
    );
    let peek = f.message(BETA, &id).await?;
    assert_eq!((peek.status, peek.code()), (400, Some(100)));
    assert_eq!(f.message(ALPHA, &id).await?.status, 200);
    let admin = f
        .web
        .post(
            &f.url("/wagate/admin/clock"),
            ALPHA,
            &json!({ "advance_secs": 1 }),
            &[],
        )
        .await?;
    assert_eq!(admin.status, 403);
    let nobody = f
        .send("no-such-token-000000", NUMBER_A, &request, &[])
        .await?;
    assert_eq!((nobody.status, nobody.code()), (401, Some(190)));
    let anonymous = f
        .web
        .request(
            hyper::Method::POST,
            &f.url(&format!("/v23.0/{NUMBER_A}/messages")),
            &[],
            "{}",
        )
        .await?;
    assert_eq!((anonymous.status, anonymous.code()), (401, Some(190)));
    f.meta.wait_for(1, WAIT).await?;
    assert_eq!(f.meta.received().len(), 1);
    // Beta's messages go to Meta with beta's own access token.
    f.opt_in(NUMBER_B, std::slice::from_ref(&to)).await?;
    let beta_template = json!({ "account": 2, "name": "hello", "language": "en_US",
                                "category": "utility", "body": "Hi {{1}}" });
    assert_eq!(
        f.admin("/wagate/admin/templates", beta_template)
            .await?
            .status,
        200
    );
    for status in ["in_review", "approved"] {
        let body = json!({ "account": 2, "name": "hello", "language": "en_US", "status": status });
        assert_eq!(
            f.admin("/wagate/admin/templates/status", body)
                .await?
                .status,
            200
        );
    }
    let sent = f
        .send(BETA, NUMBER_B, &template_send(&to, "hello", &["x"]), &[])
        .await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let received = f.meta.wait_for(2, WAIT).await?;
    assert_eq!(received[1].path, format!("/v23.0/{NUMBER_B}/messages"));
    assert_eq!(
        received[1].header("authorization"),
        Some(format!("Bearer {BETA_META_TOKEN}").as_str())
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_get_the_first_answer_across_a_restart() -> Result<()> {
    let (mut f, to) = Fixture::ready_for("idempotency", "", 11).await?;
    let request = template_send(&to, "order_update", &["Ada"]);
    let key = [("idempotency-key", "order-77-shipped")];
    let first = f.send(ALPHA, NUMBER_A, &request, &key).await?;
    assert_eq!(first.status, 200);
    f.meta.wait_for(1, WAIT).await?;
    f.stop()?;
    f.restart()?;
    let retry = f.send(ALPHA, NUMBER_A, &request, &key).await?;
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(retry.message_id(), first.message_id());
    let other = template_send(&to, "order_update", &["Bo"]);
    let reused = f.send(ALPHA, NUMBER_A, &other, &key).await?;
    assert_eq!((reused.status, reused.code()), (422, Some(100)));
    assert_eq!(
        reused.json()["error"]["wagate_reason"],
        "idempotency_key_reused"
    );
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(
        metrics.contains("wagate_idempotent_replays_total 1"),
        "{metrics}"
    );
    assert_eq!(f.meta.received().len(), 1, "one send reached Meta");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_503_with_a_retry_hint_and_recovers() -> Result<()> {
    let mut f = Fixture::start("backpressure", "[http]\nmax_pending_messages = 300\n").await?;
    let people: Vec<String> = (1..=200).map(person).collect();
    f.ready_to_send(&people).await?;
    let bulk = bulk_of(&people);
    let too_big: String = bulk.repeat(2);
    let refused = f.bulk(ALPHA, too_big).await?;
    assert_eq!((refused.status, refused.code()), (413, Some(100)));
    // Many bulks of 200 at once against room for 300: some must be turned away.
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (web, url, body) = (f.web.clone(), f.url("/wagate/v1/bulk"), bulk.clone());
        tasks.push(tokio::spawn(async move {
            post_bulk(&web, &url, ALPHA, body).await
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        let answer = task.await??;
        if answer.status == 503 {
            assert_eq!(answer.code(), Some(131_016));
            assert_eq!(answer.headers["retry-after"], "1");
        }
        statuses.push(answer.status);
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    assert!(metrics.contains("wagate_ingest_pending 0"), "{metrics}");
    let single = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&people[0], "order_update", &["x"]),
            &[],
        )
        .await?;
    assert_eq!(single.status, 200, "the server recovers: {}", single.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_meta_paused_is_refused_with_132015_until_the_pause_ends() -> Result<()> {
    // Pauses exist in the 2025 rule set (three hours, then six, then disabled).
    let mut f = Fixture::start("paused", "[engine]\nprofile = \"whatsapp-2025\"\n").await?;
    let to = person(4);
    f.opt_in(NUMBER_A, std::slice::from_ref(&to)).await?;
    f.approved_template("notice", "utility", "Notice {{1}}.")
        .await?;
    let request = template_send(&to, "notice", &["x"]);
    let paused = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "message_template_status_update", "value": {
            "event": "PAUSED", "message_template_id": 594_425_479_261_596_u64,
            "message_template_name": "notice", "message_template_language": "en_US",
            "reason": null
        }}]}]
    });
    let applied = f.meta_webhook(&paused, None).await?;
    assert_eq!(applied.json()["applied"], 1, "{}", applied.text());
    let refused = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(refused.code(), Some(132_015), "{}", refused.text());
    assert_eq!(refused.json()["error"]["wagate_reason"], "template_paused");
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 3 * 3_600 }))
        .await?;
    let after = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
    assert_eq!(after.status, 200, "{}", after.text());
    f.stop()
}
