//! Campaigns as objects: an audience uploaded and screened (who is left out and why, the cost),
//! the plan before anything is sent, then the campaign run over the days exactly as planned,
//! paused on Meta's word and resumed, surviving a SIGKILL with nobody sent twice, its tenant
//! told; and its delivery counts from Meta's statuses equal to what Meta saw.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::campaigns::*;
use crate::support::fixture::*;
use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::WAIT;

fn accepted_on(view: &Value, day: usize) -> u64 {
    view["counts"]["days"][day].as_u64().unwrap_or(0)
}

/// Campaign events the tenant's callback got, as (event, reason).
fn told_events(f: &Fixture, id: &str) -> Vec<(String, String)> {
    f.sink
        .received()
        .into_iter()
        .filter_map(|r| {
            let change = r.json()["entry"][0]["changes"][0].clone();
            let event = change["value"]["campaigns"][0].clone();
            (change["field"] == "wagate_campaigns" && event["id"] == id).then(|| {
                (
                    event["event"].as_str().unwrap_or("").to_string(),
                    event["reason"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

/// Settles what the kill left in flight as an operator does: sent if Meta has it, else again.
async fn settle_in_flight(f: &Fixture) -> Result<()> {
    let url = f.url("/wagate/admin/messages/in_flight");
    let listed = f.web.get(&url, ADMIN).await?.json();
    let at_meta: HashSet<String> = f
        .meta
        .received()
        .iter()
        .map(|r| {
            let to = r.json()["to"].as_str().unwrap_or_default().to_string();
            to.trim_start_matches('+').to_string()
        })
        .collect();
    for message in listed["messages"].as_array().into_iter().flatten() {
        let id = message["id"].as_str().unwrap_or_default();
        let to = message["to"].as_str().unwrap_or_default();
        let body = if at_meta.contains(to.trim_start_matches('+')) {
            json!({ "upstream_id": format!("wamid.settled-{id}") })
        } else {
            json!({ "resend": true })
        };
        let settled = f
            .admin(&format!("/wagate/admin/messages/{id}/settle"), body)
            .await?;
        if settled.status != 200 {
            bail!("settling {id}: {}", settled.text());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_planned_then_runs_the_days_it_planned_paused_by_meta_and_killed_midway(
) -> Result<()> {
    let mut f = Fixture::start("campaign-run", "").await?;
    let eligible: Vec<String> = (1..=2_300u64).map(|i| format!("+1650{i:07}")).collect();
    f.ready_to_send(&eligible).await?;
    let never_asked: Vec<String> = (1..=5u64).map(|i| format!("+1651{i:07}")).collect();
    let withdrew: Vec<String> = (1..=3u64).map(|i| format!("+1652{i:07}")).collect();
    f.opt_in(NUMBER_A, &withdrew).await?;
    let out = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_A.to_string(), "to": withdrew, "change": "opt_out" }),
        )
        .await?;
    assert_eq!(out.status, 200, "{}", out.text());
    let mut lines: Vec<String> = eligible
        .iter()
        .chain(&never_asked)
        .chain(&withdrew)
        .map(|to| line(to))
        .collect();
    lines.push(line(&eligible[7]));
    lines.push(line("not a number"));
    lines.push("{ broken".into());

    let query = format!("phone_number_id={NUMBER_A}&template=order_update&name=winter");
    let created = create(&f, &query, lines.join("\n")).await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created["state"], "planned", "{created}");
    let audience = &created["audience"];
    assert_eq!(audience["received"], 2_300 + 5 + 3 + 3, "{created}");
    assert_eq!(audience["eligible"], 2_300, "{created}");
    assert_eq!(
        audience["excluded"],
        json!({ "no_opt_in": 5, "opted_out": 3, "duplicate": 1, "invalid": 2 }),
        "{created}"
    );
    let plan: Vec<u64> = planned(&created, "sends")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let limit = number_usage(&f, NUMBER_A).await?["limit_24h"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(plan, [limit, limit, 2_300 - 2 * limit], "{created}");

    // Planned is not started: time passes and nothing is fed.
    advance(&f, 5).await?;
    assert_eq!(campaign(&f, &id).await?["counts"]["fed"], 0);
    act(&f, &id, "start").await?;
    let day0 = wait_campaign(&f, &id, |v| accepted_on(v, 0) == plan[0]).await?;
    assert_eq!(
        day0["counts"]["fed"], plan[0],
        "fed only what the day has room for: {day0}"
    );
    advance(&f, 2).await?;
    recipients_at_meta(&f, plan[0] as usize).await?;
    let started_at = day0["started_at"].as_u64().unwrap_or(0);

    // Day 1 begins; the server is killed as the day's part is fed, and comes back.
    set_clock(&f, started_at + 86_400 + 1).await?;
    f.wagate.take().expect("running").kill()?;
    f.restart()?;
    settle_in_flight(&f).await?;
    set_clock(&f, started_at + 86_400 + 1).await?;
    let day1 = wait_campaign(&f, &id, |v| accepted_on(v, 1) == plan[1]).await?;
    assert_eq!(day1["counts"]["accepted"], plan[0] + plan[1], "{day1}");
    advance(&f, 2).await?;
    recipients_at_meta(&f, (plan[0] + plan[1]) as usize).await?;

    // Meta flags the number: the campaign pauses, and its tenant hears of it.
    let flagged = account_webhook(
        "phone_number_quality_update",
        json!({ "display_phone_number": DISPLAY_A.to_string(), "event": "FLAGGED",
                "current_limit": "TIER_1K" }),
    );
    assert_eq!(f.meta_webhook(&flagged, None).await?.json()["applied"], 1);
    let paused = wait_campaign(&f, &id, |v| v["state"] == "paused").await?;
    assert_eq!(paused["paused_by"], "quality_dropped", "{paused}");
    set_clock(&f, started_at + 2 * 86_400 + 1).await?;
    advance(&f, 1).await?;
    assert_eq!(
        campaign(&f, &id).await?["counts"]["fed"],
        plan[0] + plan[1],
        "nobody fed while paused"
    );
    // The operator resumes it: the rest goes on the day the plan said.
    act(&f, &id, "resume").await?;
    let done = wait_campaign(&f, &id, |v| v["state"] == "done").await?;
    assert_eq!(done["counts"]["days"], json!(plan), "{done}");
    assert_eq!(done["counts"]["accepted"], 2_300, "{done}");
    assert_eq!(done["counts"]["refused"], json!({}), "{done}");
    advance(&f, 2).await?;
    let at_meta = recipients_at_meta(&f, 2_300).await?;
    let unique: HashSet<&String> = at_meta.iter().collect();
    assert_eq!(at_meta.len(), 2_300, "nobody sent twice");
    assert_eq!(unique.len(), 2_300);
    let wanted: HashSet<String> = eligible.iter().map(|p| p[1..].to_string()).collect();
    assert!(
        at_meta
            .iter()
            .all(|to| wanted.contains(to.trim_start_matches('+'))),
        "only the eligible reached Meta"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while told_events(&f, &id).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tenant was not told"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        told_events(&f, &id),
        [
            ("paused".to_string(), "quality_dropped".to_string()),
            ("done".to_string(), String::new())
        ]
    );
    // Operators see it in /metrics too.
    let metrics = f.web.get(&f.url("/metrics"), "").await?.text();
    assert_eq!(
        metric_value(&metrics, "wagate_campaigns{state=\"done\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wagate_campaign_events_total{event=\"paused\",reason=\"quality_dropped\"}"
        ),
        Some(1.0)
    );
    // Over is over.
    let url = f.url(&format!("/wagate/v1/campaigns/{id}/resume"));
    assert_eq!(f.web.post(&url, ALPHA, &json!({}), &[]).await?.status, 409);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_s_counts_are_what_meta_saw_and_another_tenant_cannot_see_it() -> Result<()> {
    let (_mock, base, mut f) = with_mock_meta(
        "campaign-counts",
        wagate_loadgen::mock_meta::Faults {
            read_share: 0.5,
            ..Default::default()
        },
        &["--clock.mode", "system"],
    )
    .await?;
    let people: Vec<String> = (1..=400u64).map(|i| format!("+1653{i:07}")).collect();
    f.ready_to_send(&people).await?;
    let body = audience(&people);
    let query = format!("phone_number_id={NUMBER_A}&template=order_update");
    let id = create(&f, &query, body).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Another tenant knows nothing of it.
    let url = f.url(&format!("/wagate/v1/campaigns/{id}"));
    assert_eq!(f.web.get(&url, BETA).await?.status, 400);
    act(&f, &id, "start").await?;
    let report = |f: &Fixture| {
        let (web, url) = (f.web.clone(), format!("{base}/mock/report"));
        async move { Ok::<Value, anyhow::Error>(web.get(&url, "").await?.json()) }
    };
    let done = wait_campaign(&f, &id, |v| v["counts"]["delivered"] == 400).await?;
    let seen = report(&f).await?;
    assert_eq!(seen["accepted"], 400, "{seen}");
    assert_eq!(seen["violations"], 0, "{seen}");
    assert_eq!(seen["duplicates"], 0, "{seen}");
    assert_eq!(done["counts"]["sent"], 400, "{done}");
    let read = seen["statuses"]["read"].as_u64().unwrap_or(0);
    assert!(read > 0, "{seen}");
    let done = wait_campaign(&f, &id, |v| v["counts"]["read"] == read).await?;
    assert_eq!(done["counts"]["failed"], 0, "{done}");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_s_own_quiet_hours_hold_each_person_to_their_local_morning() -> Result<()> {
    let mut f = Fixture::start("campaign-quiet", "").await?;
    // 00:00 UTC: 05:30 in India (held until 09:00 there, 03:30 UTC), 16:00 the day before in
    // California (allowed).
    let india: Vec<String> = (1..=3u64).map(|i| format!("+9198765{i:05}")).collect();
    let california: Vec<String> = (1..=4u64).map(|i| format!("+1650{i:07}")).collect();
    let everyone: Vec<String> = india.iter().chain(&california).cloned().collect();
    f.ready_to_send(&everyone).await?;
    let body = audience(&everyone);
    let query = format!(
        "phone_number_id={NUMBER_A}&template=order_update&allowed_from=09:00&allowed_to=21:00"
    );
    let created = create(&f, &query, body).await?;
    assert_eq!(
        created["quiet_hours"],
        json!({ "allowed_from": "09:00", "allowed_to": "21:00" })
    );
    let id = created["id"].as_str().unwrap_or_default().to_string();
    for wrong in ["allowed_from=09:00", "allowed_from=9&allowed_to=21:00"] {
        let url = f.url(&format!(
            "/wagate/v1/campaigns?phone_number_id={NUMBER_A}&template=order_update&{wrong}"
        ));
        let refused = post_bulk(&f.web, &url, ALPHA, line(&india[0])).await?;
        assert_eq!(refused.status, 400, "{wrong}: {}", refused.text());
    }
    act(&f, &id, "start").await?;
    let fed = wait_campaign(&f, &id, |v| v["counts"]["fed"] == 7).await?;
    assert_eq!(fed["counts"]["accepted"], 4, "{fed}");
    assert_eq!(fed["counts"]["queued"], 3, "{fed}");
    advance(&f, 1).await?;
    let first = recipients_at_meta(&f, 4).await?;
    assert!(first.iter().all(|to| to.starts_with("+1650")), "{first:?}");
    // India's morning: the held sends go at 09:00 there, to the second.
    let url = f.url(&format!("/wagate/v1/scheduled?phone_number_id={NUMBER_A}"));
    let queued = f.web.get(&url, ALPHA).await?.json();
    let due: Vec<u64> = queued["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["queued_until"].as_u64())
        .collect();
    assert_eq!(due, [START_UNIX + 12_600; 3], "{queued}");
    advance(&f, 12_600 - 2).await?;
    assert_eq!(f.meta.received().len(), 4, "not a second early");
    advance(&f, 1).await?;
    recipients_at_meta(&f, 5).await?;
    advance(&f, 1).await?;
    let all = recipients_at_meta(&f, 7).await?;
    assert!(all[4..].iter().all(|to| to.starts_with("+91")), "{all:?}");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_s_cost_is_reconciled_from_meta_s_pricing_and_takes_back_the_undelivered(
) -> Result<()> {
    let mut f = Fixture::start("campaign-reconciled", "").await?;
    let people: Vec<String> = (1..=3u64).map(|i| format!("+1652{i:07}")).collect();
    f.ready_to_send(&people).await?;
    let query = format!("phone_number_id={NUMBER_A}&template=order_update");
    let id = create(&f, &query, audience(&people)).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    act(&f, &id, "start").await?;
    wait_campaign(&f, &id, |v| v["counts"]["fed"] == 3).await?;
    advance(&f, 1).await?;
    let sent = f.meta.wait_for(3, crate::WAIT).await?;
    // Meta's statuses, priced as Meta prices them.
    let priced = |wamid: &str, status: &str, to: &str| {
        let mut webhook = status_webhook(NUMBER_A, wamid, status, to);
        webhook["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] = json!({
            "billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility" });
        webhook
    };
    let recipients: Vec<String> = sent
        .iter()
        .map(|r| r.json()["to"].as_str().unwrap_or_default().to_string())
        .collect();
    for (n, to) in recipients.iter().enumerate() {
        let webhook = priced(&format!("wamid.stub.{n}"), "sent", to);
        assert_eq!(f.meta_webhook(&webhook, None).await?.json()["applied"], 1);
    }
    let priced_all = wait_campaign(&f, &id, |v| v["counts"]["priced"] == 3).await?;
    let counts = &priced_all["counts"];
    let estimated = counts["cost_accepted_micros"].as_u64().unwrap_or(0);
    assert!(estimated > 0, "{priced_all}");
    assert_eq!(counts["cost_reconciled_micros"], estimated, "{priced_all}");
    // One never reached its person: Meta charges nothing for it.
    let failed = status_webhook(NUMBER_A, "wamid.stub.2", "failed", &recipients[2]);
    assert_eq!(f.meta_webhook(&failed, None).await?.json()["applied"], 1);
    let after = wait_campaign(&f, &id, |v| v["counts"]["priced"] == 2).await?;
    assert_eq!(
        after["counts"]["cost_reconciled_micros"],
        estimated / 3 * 2,
        "{after}"
    );
    f.stop()
}
