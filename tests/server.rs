//! The real `wagate` binary, started on a free port with a local stand-in for Meta's API,
//! driven over HTTP as a sender, as Meta (webhooks) and as an operator (admin API).

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use wagate_tests::fixture::*;

const WAIT: Duration = Duration::from_secs(20);

/// Meta's word and the person's, over the public API.
mod truth;

/// What the server refuses or survives that it once took badly.
mod hardening;
mod operability;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_accepted_dispatched_and_its_status_forwarded_signed() -> Result<()> {
    let mut f = Fixture::start("e2e", "").await?;
    let to = person(1);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
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
    let mut bulk = String::new();
    for to in &people[..1_000] {
        let line = json!({ "phone_number_id": NUMBER_A.to_string(),
                           "request": template_send(to, "order_update", &["Ada"]) });
        bulk.push_str(&line.to_string());
        bulk.push('\n');
    }
    let answer = f.bulk(ALPHA, bulk).await?;
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
    assert_eq!(sent[1_000].json(), last);
    f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    f.stop()
}

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
async fn tenants_cannot_see_or_use_each_others_numbers_or_messages() -> Result<()> {
    let mut f = Fixture::start("tenants", "").await?;
    let to = person(9);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
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
    let mut f = Fixture::start("idempotency", "").await?;
    let to = person(11);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
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
    let bulk: String = people
        .iter()
        .map(|to| {
            json!({ "phone_number_id": NUMBER_A.to_string(),
                    "request": template_send(to, "order_update", &["Ada"]) })
            .to_string()
                + "\n"
        })
        .collect();
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
async fn sigterm_finishes_open_work_then_exits_cleanly() -> Result<()> {
    let mut f = Fixture::start("shutdown", "").await?;
    let people: Vec<String> = (1..=300).map(person).collect();
    f.ready_to_send(&people).await?;
    let mut tasks = Vec::new();
    for to in &people {
        let (web, url, body) = (
            f.web.clone(),
            f.url(&format!("/v23.0/{NUMBER_A}/messages")),
            template_send(to, "order_update", &["Ada"]),
        );
        tasks.push(tokio::spawn(async move {
            web.post(&url, ALPHA, &body, &[]).await
        }));
    }
    // Stop while the sends are in progress.
    let first = tasks.remove(0).await??;
    assert_eq!(first.status, 200);
    let server = f.wagate.take().expect("running");
    server.terminate()?;
    let mut accepted = 1;
    for task in tasks {
        // Requests the server took are answered; later ones find it closed.
        if let Ok(Ok(answer)) = task.await {
            if answer.status == 200 {
                accepted += 1;
            } else {
                assert_eq!(answer.status, 503, "{}", answer.text());
            }
        }
    }
    let status = server.wait(Duration::from_secs(60))?;
    assert!(status.success(), "{status}");
    // Sends due by the stop reached Meta before the exit; those paced later (the manual
    // clock stands still) were kept, and go after a restart once their slot comes. None is
    // lost and none goes twice.
    let before_restart = f.meta.received().len();
    assert!(before_restart >= 1 && before_restart <= accepted);
    f.restart()?;
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 10 }))
        .await?;
    let sent = f.meta.wait_for(accepted, WAIT).await?;
    let mut recipients: Vec<String> = sent
        .iter()
        .map(|r| r.json()["to"].as_str().unwrap_or_default().to_string())
        .collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), accepted, "no send went twice");
    f.stop()?;
    assert_eq!(f.meta.received().len(), accepted);
    Ok(())
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
    use wagate_tests::meta_stub::Scripted;
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

/// The response schema documented for `status` of an operation, `$ref`s resolved.
fn documented_schema<'a>(doc: &'a Value, operation: &'a Value, status: u16) -> Option<&'a Value> {
    let resolve = |v: &'a Value| -> &'a Value {
        match v["$ref"].as_str() {
            Some(reference) => reference
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |node, part| &node[part]),
            None => v,
        }
    };
    let response = resolve(&operation["responses"][status.to_string()]);
    if response.is_null() {
        return None;
    }
    Some(resolve(&response["content"]["application/json"]["schema"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_running_server() -> Result<()> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))?;
    let doc: Value = serde_yaml_ng::from_str(&text)?;
    let mut f = Fixture::start("openapi", "").await?;
    let to = person(3);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
    let template = template_send(&to, "order_update", &["Ada"]);
    let sent = f.send(ALPHA, NUMBER_A, &template, &[]).await?;
    let id = sent.message_id();
    let bulk_line =
        json!({ "phone_number_id": NUMBER_A.to_string(), "request": template }).to_string();
    let webhook = status_webhook(NUMBER_A, "wamid.unknown", "delivered", "16505550003").to_string();
    let signed = signature(APP_SECRET, webhook.as_bytes());
    // A request that succeeds for each documented operation.
    let probes: Vec<(&str, String, &str, String, &str)> = vec![
        ("post", format!("/v23.0/{NUMBER_A}/messages"), ALPHA, template.to_string(), "application/json"),
        ("post", "/wagate/v1/bulk".into(), ALPHA, bulk_line + "\n", "application/x-ndjson"),
        ("get", format!("/wagate/v1/messages/{id}"), ALPHA, String::new(), ""),
        ("get", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=5".into(), "", String::new(), ""),
        ("post", "/webhooks/meta".into(), "", webhook, "application/json"),
        ("post", "/wagate/admin/numbers".into(), ADMIN,
         json!({ "id": 3001, "account": 3, "portfolio": 3, "display_phone_number": "+15550003001" }).to_string(), "application/json"),
        ("get", format!("/wagate/admin/numbers/{NUMBER_A}/usage"), ADMIN, String::new(), ""),
        ("post", format!("/wagate/admin/numbers/{NUMBER_A}/quality"), ADMIN, json!({ "quality": "GREEN" }).to_string(), "application/json"),
        ("post", "/wagate/admin/templates".into(), ADMIN,
         json!({ "account": 1, "name": "welcome", "language": "en_US", "category": "marketing", "body": "Hi {{1}}" }).to_string(), "application/json"),
        ("post", "/wagate/admin/templates/status".into(), ADMIN,
         json!({ "account": 1, "name": "welcome", "language": "en_US", "status": "in_review" }).to_string(), "application/json"),
        ("post", "/wagate/admin/contacts/consent".into(), ADMIN,
         json!({ "phone_number_id": NUMBER_A.to_string(), "to": [person(4), person(5)], "change": "opt_in" }).to_string(), "application/json"),
        ("get", format!("/wagate/admin/contacts/{NUMBER_A}/{to}"), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/ledger".into(), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/messages/in_flight".into(), ADMIN, String::new(), ""),
        // Nothing is in flight here: the documented 409.
        ("post", format!("/wagate/admin/messages/{id}/settle"), ADMIN, json!({ "resend": true }).to_string(), "application/json"),
        ("get", "/wagate/admin/clock".into(), ADMIN, String::new(), ""),
        ("post", "/wagate/admin/clock".into(), ADMIN, json!({ "advance_secs": 1 }).to_string(), "application/json"),
        ("get", "/metrics".into(), "", String::new(), ""),
        ("get", "/healthz".into(), "", String::new(), ""),
    ];
    let template_of = |path: &str| {
        let path = path.split('?').next().unwrap_or(path);
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .find(|documented| {
                let (a, b): (Vec<&str>, Vec<&str>) =
                    (documented.split('/').collect(), path.split('/').collect());
                a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.starts_with('{') || x == y)
            })
            .cloned()
    };
    let mut covered = std::collections::BTreeSet::new();
    for (method, path, token, body, content_type) in &probes {
        let documented = template_of(path).unwrap_or_else(|| panic!("{path} is not documented"));
        let operation = &doc["paths"][&documented][method];
        assert!(
            operation.is_object(),
            "{method} {documented} is not documented"
        );
        covered.insert(format!("{method} {documented}"));
        let auth = format!("Bearer {token}");
        let mut headers = Vec::new();
        if !token.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        if !content_type.is_empty() {
            headers.push(("content-type", *content_type));
        }
        if *method == "post" && documented == "/webhooks/meta" {
            headers.push(("x-hub-signature-256", signed.as_str()));
        }
        let verb = if *method == "get" {
            hyper::Method::GET
        } else {
            hyper::Method::POST
        };
        let answer = f
            .web
            .request(verb.clone(), &f.url(path), &headers, body.clone())
            .await?;
        let expected = if path.ends_with("/settle") { 409 } else { 200 };
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}",
            answer.text()
        );
        if let Some(schema) = documented_schema(&doc, operation, answer.status) {
            let json = answer.json();
            for field in schema["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap();
                assert!(
                    json.get(field).is_some(),
                    "{method} {path}: no {field} in {json}"
                );
            }
        }
        // Without credentials, secured operations answer a documented 401 in Meta's shape.
        let open = operation.get("security").is_some_and(|s| s == &json!([]));
        if !open && !documented.starts_with("/webhooks") {
            let anonymous = f.web.request(verb, &f.url(path), &[], body.clone()).await?;
            assert_eq!(anonymous.status, 401, "{method} {path} without a token");
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {documented}: 401 undocumented"
            );
            let error = documented_schema(&doc, operation, 401).unwrap();
            for field in error["required"].as_array().into_iter().flatten() {
                assert!(anonymous.json().get(field.as_str().unwrap()).is_some());
            }
        }
    }
    let documented: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    assert_eq!(documented, covered, "every documented operation is probed");
    let unknown = f.web.get(&f.url("/wagate/v1/nothing-here"), ADMIN).await?;
    assert_eq!((unknown.status, unknown.code()), (404, Some(100)));
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_a_tenant_is_retried_and_survives_a_restart() -> Result<()> {
    use wagate_tests::meta_stub::Scripted;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_clock_cannot_be_moved_and_the_command_line_overrides_the_file() -> Result<()> {
    // The file says manual; the command line says system, and wins.
    let mut f = Fixture::start_with("system-clock", "", &["--clock.mode", "system"]).await?;
    let clock = f
        .web
        .get(&f.url("/wagate/admin/clock"), ADMIN)
        .await?
        .json();
    assert_eq!(clock["manual"], false);
    let moved = f
        .admin("/wagate/admin/clock", json!({ "advance_secs": 60 }))
        .await?;
    assert_eq!((moved.status, moved.code()), (409, Some(100)));
    assert_eq!(moved.json()["error"]["wagate_reason"], "system_clock");
    let now = f
        .web
        .get(&f.url("/wagate/admin/clock"), ADMIN)
        .await?
        .json();
    assert!(now["now_unix_secs"].as_u64().unwrap() >= clock["now_unix_secs"].as_u64().unwrap());
    assert!(
        now["now_unix_secs"].as_u64().unwrap() > START_UNIX,
        "the system clock, not the file's start"
    );
    f.stop()
}

/// A fresh server whose one message Meta has received and holds unanswered; its id.
async fn sent_while_meta_holds(name: &str, who: u64) -> Result<(Fixture, String)> {
    let f = Fixture::start(name, "").await?;
    let to = person(who);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
    f.meta.hold();
    let sent = f.send_update(&to).await?;
    f.meta.wait_for(1, WAIT).await?;
    Ok((f, sent.message_id()))
}

/// A server that died while Meta held its request: restarted, with that message in flight.
async fn crash_with_a_message_in_flight(name: &str, who: u64) -> Result<(Fixture, String)> {
    let (mut f, id) = sent_while_meta_holds(name, who).await?;
    // Meta has the request and has not answered: wagate dies.
    f.wagate.take().expect("running").kill()?;
    f.meta.release();
    f.restart()?;
    Ok((f, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_flight_at_a_crash_waits_for_an_operator_and_is_never_sent_blindly(
) -> Result<()> {
    let (mut f, id) = crash_with_a_message_in_flight("in-flight", 12).await?;
    let stuck = f
        .web
        .get(&f.url("/wagate/admin/messages/in_flight"), ADMIN)
        .await?
        .json();
    assert_eq!(stuck["messages"][0]["id"], id.as_str(), "{stuck}");
    assert_eq!(stuck["messages"][0]["status"], "in_flight");
    assert_eq!(f.meta.received().len(), 1, "not sent again by itself");
    let settle = |body: Value| {
        let (web, url) = (
            f.web.clone(),
            f.url(&format!("/wagate/admin/messages/{id}/settle")),
        );
        async move { web.post(&url, ADMIN, &body, &[]).await }
    };
    // Meta delivered it meanwhile: the status waits for a message with that wamid.
    let delivered = status_webhook(NUMBER_A, "wamid.found", "delivered", "16505550012");
    assert_eq!(f.meta_webhook(&delivered, None).await?.json()["ignored"], 1);
    // The operator finds it in Meta's records: settled as sent, with Meta's id, and the
    // status that waited applies.
    let settled = settle(json!({ "upstream_id": "wamid.found" })).await?;
    assert_eq!(settled.status, 200, "{}", settled.text());
    let view = f.message(ALPHA, &id).await?.json();
    assert_eq!(
        (
            view["status"].clone(),
            view["upstream_id"].clone(),
            view["delivery"].clone()
        ),
        (json!("sent"), json!("wamid.found"), json!("delivered"))
    );
    let again = settle(json!({ "resend": true })).await?;
    assert_eq!((again.status, again.code()), (409, Some(100)));
    // Its later status webhooks find it.
    let read = status_webhook(NUMBER_A, "wamid.found", "read", "16505550012");
    assert_eq!(f.meta_webhook(&read, None).await?.json()["applied"], 1);
    assert_eq!(f.message(ALPHA, &id).await?.json()["delivery"], "read");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_have_a_message_left_in_flight_sent_again() -> Result<()> {
    let (mut f, id) = crash_with_a_message_in_flight("resend", 13).await?;
    let resent = f
        .web
        .post(
            &f.url(&format!("/wagate/admin/messages/{id}/settle")),
            ADMIN,
            &json!({ "resend": true }),
            &[],
        )
        .await?;
    assert_eq!(resent.status, 200, "{}", resent.text());
    let received = f.meta.wait_for(2, WAIT).await?;
    assert_eq!(received[1].json(), received[0].json());
    let view = f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    assert_eq!(view["attempts"], 2);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_grpc_streams_after_answering_what_they_sent() -> Result<()> {
    use wagate::server::grpc::proto::SendRequest;

    let mut f = Fixture::start("grpc-stop", "").await?;
    let to = person(14);
    f.ready_to_send(std::slice::from_ref(&to)).await?;
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
async fn against_mock_meta_the_oracle_sees_no_violation_and_no_duplicate() -> Result<()> {
    use wagate_loadgen::mock_meta::Faults;

    let (_mock, base, mut f) =
        with_mock_meta("mock-meta", Faults::default(), &["--clock.mode", "system"]).await?;
    let people: Vec<String> = (1..=40).map(person).collect();
    f.ready_to_send(&people).await?;
    let report = |f: &Fixture| {
        let (web, url) = (f.web.clone(), format!("{base}/mock/report"));
        async move { Ok::<Value, anyhow::Error>(web.get(&url, "").await?.json()) }
    };
    // A person writes to the business through Meta: the window opens on both sides.
    let inbound =
        json!({ "phone_number_id": NUMBER_A.to_string(), "from": "16505550001", "text": "hi" });
    f.web
        .post(&format!("{base}/mock/inbound"), "", &inbound, &[])
        .await?;
    let contact_url = f.url(&format!("/wagate/admin/contacts/{NUMBER_A}/{}", people[0]));
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.web.get(&contact_url, ADMIN).await?.json()["window_open"] != true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the inbound webhook never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ids = Vec::new();
    for (i, to) in people.iter().enumerate() {
        let key = format!("order-{i}");
        let request = template_send(to, "order_update", &["Ada"]);
        // Each send is retried once with its key, as a client that lost the answer would.
        for _ in 0..2 {
            let answer = f
                .send(ALPHA, NUMBER_A, &request, &[("idempotency-key", &key)])
                .await?;
            assert_eq!(answer.status, 200, "{}", answer.text());
            ids.push(answer.message_id());
        }
    }
    let reply = f
        .send(
            ALPHA,
            NUMBER_A,
            &text_send(&people[0], "thanks for writing"),
            &[],
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = report(&f).await?;
        if seen["sends"] == 41 {
            assert_eq!(seen["accepted"], 41, "{seen}");
            assert_eq!(seen["violations"], 0, "{seen}");
            assert_eq!(seen["duplicates"], 0, "{seen}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // mock-meta's status webhooks come back to wagate, signed.
    f.wait_message(&ids[0], WAIT, |v| v["delivery"] == "delivered")
        .await?;
    // The oracle is not blind: a free-form text outside the window is a violation.
    let outside = f
        .web
        .post(
            &format!("{base}/v23.0/{NUMBER_A}/messages"),
            "",
            &text_send(&people[5], "hi"),
            &[],
        )
        .await?;
    assert_eq!((outside.status, outside.code()), (400, Some(131_047)));
    assert_eq!(report(&f).await?["violations"], 1);
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
async fn the_load_generator_paces_an_open_loop_run_and_counts_every_answer() -> Result<()> {
    use wagate_loadgen::driver::{run, DriverConfig, Transport};
    use wagate_loadgen::traffic::TrafficModel;

    let mut f = Fixture::start("loadgen", "").await?;
    // The driver's recipients: +16500000000 and up.
    let people: Vec<String> = (0..50).map(|i| format!("+1650{i:07}")).collect();
    f.ready_to_send(&people).await?;
    let config = |rate: Option<f64>, batch: usize| DriverConfig {
        target: f.url(""),
        token: ALPHA.into(),
        model: TrafficModel::plain(NUMBER_A, 1, 50, "order_update"),
        mock: None,
        concurrency: 4,
        messages: 50,
        max_duration: WAIT,
        batch,
        rate,
        burst: None,
        transport: Transport::Http,
        connections: 1,
        mps: 80,
        tier_limit: 1_000,
    };
    // 50 requests at 100 a second: the last is due 0.49 s after the start, and waits for it.
    let open = run(config(Some(100.0), 1)).await?;
    assert_eq!((open.accepted, open.other), (50, 0));
    assert!(
        open.seconds >= 0.49,
        "an open loop ran ahead: {}",
        open.seconds
    );
    assert_eq!(open.per_second.iter().sum::<u64>(), 50);
    assert_eq!(open.p99_per_second.len(), open.per_second.len());
    assert_eq!(open.latency.len(), 50);
    // The same people again through the bulk endpoint, closed loop: each line is answered.
    let bulk = run(config(None, 10)).await?;
    assert_eq!((bulk.accepted + bulk.other, bulk.latency.len()), (50, 5));
    assert_eq!(bulk.accepted, 50, "{}", bulk.to_json());
    // An unknown token is refused, and counted as not accepted.
    let refused = run(DriverConfig {
        token: "nobody".into(),
        ..config(None, 1)
    })
    .await?;
    assert_eq!((refused.accepted, refused.other), (0, 50));
    assert!(refused.first_not_accepted.unwrap().contains("401"));
    // gRPC, unary and streamed in exchanges of ten: every send answered and counted.
    for (transport, batch, calls) in [
        (Transport::GrpcUnary, 1, 50),
        (Transport::GrpcStream, 10, 5),
    ] {
        let grpc = run(DriverConfig {
            target: f.server().grpc.clone(),
            transport,
            ..config(None, batch)
        })
        .await?;
        assert_eq!((grpc.accepted, grpc.other), (50, 0), "{}", grpc.to_json());
        assert_eq!(grpc.latency.len(), calls);
    }
    // HTTP/2, four workers sharing two connections: the single endpoint and the bulk one.
    for batch in [1, 10] {
        let http2 = run(DriverConfig {
            transport: Transport::Http2,
            connections: 2,
            ..config(None, batch)
        })
        .await?;
        assert_eq!(
            (http2.accepted, http2.other),
            (50, 0),
            "{}",
            http2.to_json()
        );
        assert_eq!(http2.latency.len(), 50 / batch as u64);
    }
    let unknown = run(DriverConfig {
        target: f.server().grpc.clone(),
        transport: Transport::GrpcStream,
        connections: 1,
        token: "nobody".into(),
        ..config(None, 10)
    })
    .await;
    assert!(unknown.is_err() || unknown.is_ok_and(|s| s.accepted == 0));
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_injected_failures_every_message_reaches_mock_meta_once() -> Result<()> {
    use wagate_loadgen::mock_meta::Faults;

    let faults = Faults {
        error_share: 0.25,
        drop_share: 0.15,
        slow_share: 0.2,
        slow_ms: 200,
        failed_share: 0.2,
        read_share: 0.5,
    };
    let (_mock, base, mut f) = with_mock_meta("faults", faults, &[]).await?;
    let people: Vec<String> = (1..=30).map(person).collect();
    f.ready_to_send(&people).await?;
    let mut ids = Vec::new();
    for to in &people {
        let answer = f
            .send(
                ALPHA,
                NUMBER_A,
                &template_send(to, "order_update", &["Ada"]),
                &[],
            )
            .await?;
        assert_eq!(answer.status, 200, "{}", answer.text());
        ids.push(answer.message_id());
    }
    // Retries back off on wagate's (manual) clock: move it on until mock-meta has taken all.
    let report_url = format!("{base}/mock/report");
    let deadline = tokio::time::Instant::now() + WAIT;
    let report = loop {
        let report = f.web.get(&report_url, "").await?.json();
        if report["accepted"] == 30 {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report}");
        f.admin("/wagate/admin/clock", json!({ "advance_secs": 60 }))
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&report["violations"], &report["duplicates"]),
        (&json!(0), &json!(0)),
        "{report}"
    );
    for fault in ["errors", "dropped", "slow"] {
        assert!(report["injected"][fault].as_u64() > Some(0), "{report}");
    }
    // Every message ends sent; those mock-meta failed say so with Meta's code.
    let failed = report["statuses"]["failed"].as_u64().unwrap_or(0);
    assert!(failed > 0, "{report}");
    let mut seen_failed = 0;
    for id in &ids {
        let view = f
            .wait_message(id, WAIT, |v| {
                v["status"] == "sent"
                    && matches!(
                        v["delivery"].as_str(),
                        Some("delivered" | "read" | "failed")
                    )
            })
            .await?;
        if view["delivery"] == "failed" {
            assert_eq!(view["error_code"], 131_026, "{view}");
            seen_failed += 1;
        }
    }
    assert_eq!(seen_failed, failed);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modelled_load_of_replies_cold_sends_and_retries_stays_compliant() -> Result<()> {
    use wagate_loadgen::driver::{run, DriverConfig, Transport};
    use wagate_loadgen::mock_meta::Faults;
    use wagate_loadgen::traffic::TrafficModel;

    let (_mock, base, mut f) =
        with_mock_meta("modelled", Faults::default(), &["--clock.mode", "system"]).await?;
    let people: Vec<String> = (0..60).map(|i| format!("+1650{i:07}")).collect();
    f.ready_to_send(&people).await?;
    let model = TrafficModel {
        zipf: 1.0,
        repliers: 10,
        reply_share: 0.3,
        cold_share: 0.1,
        retry_share: 0.1,
        seed: 7,
        ..TrafficModel::plain(NUMBER_A, 1, 60, "order_update")
    };
    let plans: Vec<_> = (0..200).map(|i| model.plan(i)).collect();
    let cold = plans
        .iter()
        .filter(|p| p.kind == wagate_loadgen::traffic::Kind::Cold)
        .count() as u64;
    assert!(cold > 0);
    let summary = run(DriverConfig {
        target: f.url(""),
        token: ALPHA.into(),
        model,
        mock: Some(base.clone()),
        concurrency: 1,
        messages: 200,
        max_duration: WAIT,
        batch: 1,
        rate: None,
        burst: None,
        transport: Transport::Http,
        connections: 1,
        mps: 80,
        tier_limit: 1_000,
    })
    .await?;
    // Cold free-form sends are refused (131047); a retry of one is refused again; the rest go.
    let cold_retries = plans
        .iter()
        .filter(|p| p.kind == wagate_loadgen::traffic::Kind::Retry && p.body.contains("\"reply "))
        .filter(|p| p.to[5..].parse::<u64>().unwrap() >= 10)
        .count() as u64;
    assert_eq!(summary.other, cold + cold_retries, "{}", summary.to_json());
    assert!(summary.first_not_accepted.unwrap().contains("131047"));
    // What reached Meta: no violation (replies went inside the windows the repliers opened)
    // and no duplicate (retries were answered from their keys, not sent again).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = f.web.get(&format!("{base}/mock/report"), "").await?.json();
        assert_eq!(
            (&report["violations"], &report["duplicates"]),
            (&json!(0), &json!(0)),
            "{report}"
        );
        if report["sends"].as_u64() > Some(100) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.stop()
}
