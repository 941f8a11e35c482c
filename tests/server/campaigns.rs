//! The campaign plan before anything is sent: per day under the number's limits as they stand,
//! and the first day's count is what then happens when the audience is sent.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_s_first_day_is_what_then_happens() -> Result<()> {
    let mut f = Fixture::start("campaign-plan", "").await?;
    let usage = number_usage(&f, NUMBER_A).await?;
    let limit = usage["limit_24h"].as_u64().expect("a limited tier") as usize;
    let people: Vec<String> = (1..=limit as u64 + 5)
        .map(|i| format!("+1650{i:07}"))
        .collect();
    f.ready_to_send(&people).await?;

    let asked = |body: Value| {
        let (web, url) = (f.web.clone(), f.url("/wagate/v1/campaigns/plan"));
        async move { web.post(&url, ALPHA, &body, &[]).await }
    };
    let plan =
        asked(json!({ "phone_number_id": NUMBER_A.to_string(), "audience": people.len() })).await?;
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan = plan.json();
    let sends: Vec<u64> = plan["days"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["sends"].as_u64())
        .collect();
    assert_eq!(sends, [limit as u64, 5], "{plan}");
    assert_eq!(plan["unplaced"], 0);
    let capped = asked(json!({ "phone_number_id": NUMBER_A.to_string(),
                              "audience": 10, "daily_cap": 4 }))
    .await?
    .json();
    assert_eq!(
        capped["days"].as_array().map(|d| d.len()),
        Some(3),
        "{capped}"
    );
    for wrong in [
        json!({ "phone_number_id": NUMBER_A.to_string(), "audience": 0 }),
        json!({ "phone_number_id": NUMBER_B.to_string(), "audience": 5 }),
        json!({ "phone_number_id": NUMBER_A.to_string(), "audience": 5, "daily_cap": 0 }),
    ] {
        assert_eq!(asked(wrong).await?.status, 400);
    }

    // Sent as planned: the first day's count is accepted, the rest waits for the next day.
    let ndjson = people
        .iter()
        .map(|to| {
            json!({ "phone_number_id": NUMBER_A.to_string(),
                    "request": template_send(to, "order_update", &["Ada"]) })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bulk = f.bulk(ALPHA, ndjson).await?;
    let accepted = bulk
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["body"]["messages"][0]["message_status"] == "accepted")
        .count();
    assert_eq!(
        accepted as u64,
        sends[0],
        "{}",
        bulk.text().lines().last().unwrap_or("")
    );
    f.stop()
}
