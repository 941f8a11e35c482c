//! What the campaign tests share: an audience, the campaign API as a tenant calls it, and
//! the two clocks (wagate's and mock-meta's) moved together.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::fixture::*;
use crate::WAIT;

/// One NDJSON audience line.
pub(crate) fn line(to: &str) -> String {
    json!({ "to": to, "parameters": ["Ada"] }).to_string()
}

/// An NDJSON audience of `people`.
pub(crate) fn audience(people: &[String]) -> String {
    people
        .iter()
        .map(|to| line(to))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) async fn create(f: &Fixture, query: &str, body: String) -> Result<Value> {
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

pub(crate) async fn campaign(f: &Fixture, id: &str) -> Result<Value> {
    let url = f.url(&format!("/wagate/v1/campaigns/{id}"));
    Ok(f.web.get(&url, ALPHA).await?.json())
}

pub(crate) async fn act(f: &Fixture, id: &str, action: &str) -> Result<Value> {
    let url = f.url(&format!("/wagate/v1/campaigns/{id}/{action}"));
    let answer = f.web.post(&url, ALPHA, &json!({}), &[]).await?;
    if answer.status != 200 {
        bail!("{action}: {} {}", answer.status, answer.text());
    }
    Ok(answer.json())
}

/// Waits until campaign `id` satisfies `done`; its view.
pub(crate) async fn wait_campaign(
    f: &Fixture,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
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

/// `field` of each of a campaign's planned days.
pub(crate) fn planned(view: &Value, field: &str) -> Vec<Value> {
    view["plan"]["days"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|day| day[field].clone())
        .collect()
}

/// Sets the manual clock (a restart starts it over from the config's start).
pub(crate) async fn set_clock(f: &Fixture, unix: u64) -> Result<()> {
    let set = f
        .admin("/wagate/admin/clock", json!({ "set_unix_secs": unix }))
        .await?;
    if set.status != 200 {
        bail!("setting the clock: {}", set.text());
    }
    Ok(())
}

/// Moves mock-meta's clock and then wagate's to `unix` (Meta's first: what wagate sends at
/// the new time must not reach Meta still at the old one, and Meta's news of that time must
/// reach wagate first).
pub(crate) async fn both_clocks(f: &Fixture, base: &str, unix: u64) -> Result<()> {
    let moved = f
        .web
        .post(
            &format!("{base}/mock/clock"),
            "",
            &json!({ "unix_secs": unix }),
            &[],
        )
        .await?;
    if moved.status != 200 {
        bail!("moving mock-meta's clock: {}", moved.text());
    }
    // What Meta tells at the new time (a tier that came due) is in before wagate moves on.
    let deadline = tokio::time::Instant::now() + WAIT;
    while mock_report(f, base).await?["webhooks_pending"] != 0 {
        if tokio::time::Instant::now() > deadline {
            bail!("mock-meta's webhooks never reached wagate");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    set_clock(f, unix).await
}

pub(crate) async fn mock_report(f: &Fixture, base: &str) -> Result<Value> {
    Ok(f.web.get(&format!("{base}/mock/report"), "").await?.json())
}

/// Waits until mock-meta has taken exactly `count` sends.
pub(crate) async fn sends_at_meta(f: &Fixture, base: &str, count: u64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sends = mock_report(f, base).await?["sends"].as_u64().unwrap_or(0);
        if sends == count {
            return Ok(());
        }
        if sends > count || tokio::time::Instant::now() > deadline {
            bail!("mock-meta took {sends} sends, not {count}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until nothing of wagate's is in flight to Meta.
pub(crate) async fn none_in_flight(f: &Fixture) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let url = f.url("/wagate/admin/messages/in_flight");
        let listed = f.web.get(&url, ADMIN).await?.json();
        if listed["messages"].as_array().is_some_and(|m| m.is_empty()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("still in flight: {listed}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
