//! The server under the load tools: mock-meta's oracle, the open-loop driver, injected
//! failures, the modelled traffic.

use std::time::Duration;

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

use super::WAIT;

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
