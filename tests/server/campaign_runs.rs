//! Campaigns as objects: an audience uploaded and screened (who is left out and why, the cost),
//! the plan before anything is sent, then the campaign run over the days exactly as planned,
//! paused on Meta's word and resumed, surviving a SIGKILL with nobody sent twice, its tenant
//! told; and its delivery counts from Meta's statuses equal to what Meta saw.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::fixture::*;
use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::WAIT;

/// One NDJSON audience line.
fn line(to: &str) -> String {
    json!({ "to": to, "parameters": ["Ada"] }).to_string()
}

async fn create(f: &Fixture, query: &str, body: String) -> Result<Value> {
    let url = f.url(&format!("/wagate/v1/campaigns?{query}"));
    let created = post_bulk(&f.web, &url, ALPHA, body).await?;
    if created.status != 201 {
        bail!(
            "creating the campaign: {} {}",
            created.status,
            created.text()
        );
    }
    Ok(created.json())
}

async fn campaign(f: &Fixture, id: &str) -> Result<Value> {
    let url = f.url(&format!("/wagate/v1/campaigns/{id}"));
    Ok(f.web.get(&url, ALPHA).await?.json())
}

async fn act(f: &Fixture, id: &str, action: &str) -> Result<Value> {
    let url = f.url(&format!("/wagate/v1/campaigns/{id}/{action}"));
    let answer = f.web.post(&url, ALPHA, &json!({}), &[]).await?;
    if answer.status != 200 {
        bail!("{action}: {} {}", answer.status, answer.text());
    }
    Ok(answer.json())
}

/// Waits until campaign `id` satisfies `done`; its view.
async fn wait_campaign(f: &Fixture, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = campaign(f, id).await?;
        if done(&view) {
            return Ok(view);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("campaign {id} never got there: {view}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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

/// Sets the manual clock (a restart starts it over from the config's start).
async fn set_clock(f: &Fixture, unix: u64) -> Result<()> {
    let set = f
        .admin("/wagate/admin/clock", json!({ "set_unix_secs": unix }))
        .await?;
    if set.status != 200 {
        bail!("setting the clock: {}", set.text());
    }
    Ok(())
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
    let plan: Vec<u64> = created["plan"]["days"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["sends"].as_u64())
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
    let body = people
        .iter()
        .map(|to| line(to))
        .collect::<Vec<_>>()
        .join("\n");
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
