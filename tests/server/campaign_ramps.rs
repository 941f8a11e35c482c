//! The end-to-end runs, one per rule set: 50,000 opted-in people on one number
//! starting at the profile's first tier, against mock-meta judging every send by Meta's rules
//! and raising the tier by that rule set's own rule, on one manual clock. The plan's days are
//! what happens, each upgrade comes on the day the plan said, Meta's word pauses the campaign
//! across a day's start and it goes on, a SIGKILL mid-day sends nobody twice, and the final
//! counts are mock-meta's.

use std::time::Duration;

use crate::support::campaigns::*;
use crate::support::fixture::*;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use wagate_loadgen::oracle::{NumberLimits, UpgradeRule};

const PEOPLE: u64 = 50_000;
/// Each day's part is decided this many seconds into the day.
const INTO_THE_DAY: u64 = 10;

/// One rule set's run.
struct Ramp {
    name: &'static str,
    args: &'static [&'static str],
    /// The number's limit at Meta at the start (the profile's first tier for it).
    first_limit: u32,
    rule: UpgradeRule,
    /// The plan's first upgrade.
    first_upgrade: &'static str,
    /// Extra campaign parameters (`&auto_resume=true`).
    query: &'static str,
    /// Meta's word an hour before this day starts pauses the campaign past the day's start.
    pause_day: usize,
    pause: MetaWord,
    /// The campaign's cause then.
    paused_by: &'static str,
    /// Seconds into the pause day when it goes on again.
    goes_on_after: u64,
    /// Meta's word then (the campaign resumes itself), or none: the operator resumes it.
    goes_on: Option<MetaWord>,
    /// The day the server is killed, five seconds into its sends.
    kill_day: usize,
}

/// Meta's word: what changes at mock-meta (one of its own calls) and the webhook wagate gets.
struct MetaWord {
    at_meta: Option<(&'static str, Value)>,
    webhook: Value,
}

/// Under `whatsapp-2021`: a `TIER_1K` number, twice the limit in 7 days earns the next tier a
/// day later; Meta flags the number and the operator resumes the campaign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_people_on_a_1k_number_go_as_planned_under_2021() -> Result<()> {
    run(Ramp {
        name: "campaign-50k-2021",
        args: &[],
        first_limit: 1_000,
        rule: UpgradeRule::whatsapp_2021(),
        first_upgrade: "TIER_10K",
        query: "",
        pause_day: 5,
        pause: MetaWord {
            at_meta: None,
            webhook: account_webhook(
                "phone_number_quality_update",
                json!({ "display_phone_number": DISPLAY_A.to_string(), "event": "FLAGGED",
                        "current_limit": "TIER_10K" }),
            ),
        },
        paused_by: "quality_dropped",
        goes_on_after: 1,
        goes_on: None,
        kill_day: 3,
    })
    .await
}

/// Under `whatsapp-2025`: the portfolio starts at 250; 2,000 unique people delivered to in 30
/// days and Meta's review (a day here) grant 2K, then half the limit in 7 days lifts each tier
/// 6 hours later, all told by `business_capability_update`. Meta pauses the template for its
/// 3 hours across a day's start and lifts it; the campaign (`auto_resume`) goes on by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_people_from_a_250_portfolio_go_as_planned_under_2025() -> Result<()> {
    let template = |event: &str| {
        account_webhook(
            "message_template_status_update",
            json!({ "event": event, "message_template_id": 594425479261596_u64,
                    "message_template_name": "order_update",
                    "message_template_language": "en_US", "reason": "NONE" }),
        )
    };
    let at_meta = |status: &str| {
        Some((
            "/mock/template_status",
            json!({ "name": "order_update", "language": "en_US", "status": status }),
        ))
    };
    run(Ramp {
        name: "campaign-50k-2025",
        args: &["--engine.profile", "whatsapp-2025"],
        first_limit: 250,
        rule: UpgradeRule::whatsapp_2025(86_400 * 1_000_000),
        // 2K comes 8 days in, and the week's usage then earns 10K at once.
        first_upgrade: "TIER_10K",
        query: "&auto_resume=true",
        // The day on 10K: the day after is on 100K, so the late start leaves it room.
        pause_day: 9,
        pause: MetaWord {
            at_meta: at_meta("PAUSED"),
            webhook: template("PAUSED"),
        },
        paused_by: "template_paused",
        // Paused an hour before the day for Meta's first pause, 3 hours.
        goes_on_after: 2 * 3_600,
        goes_on: Some(MetaWord {
            at_meta: at_meta("APPROVED"),
            webhook: template("UNPAUSED"),
        }),
        kill_day: 10,
    })
    .await
}

async fn tell(f: &Fixture, base: &str, word: &MetaWord) -> Result<()> {
    if let Some((path, body)) = &word.at_meta {
        let changed = f.web.post(&format!("{base}{path}"), "", body, &[]).await?;
        if changed.status != 200 {
            bail!("{path}: {}", changed.text());
        }
    }
    let applied = f.meta_webhook(&word.webhook, None).await?.json();
    if applied["applied"] != 1 {
        bail!("Meta's word not applied: {applied}");
    }
    Ok(())
}

async fn run(ramp: Ramp) -> Result<()> {
    // Meta's throughput is not what this run is about: only its tiers.
    let limits = NumberLimits {
        messages_per_second: 1_000_000,
        tier_limit: ramp.first_limit,
    };
    let (mock, base, mut f) = with_mock_meta_upgrading(
        ramp.name,
        Default::default(),
        ramp.args,
        limits,
        Some(ramp.rule.clone()),
    )
    .await?;
    both_clocks(&f, &base, START_UNIX).await?;
    let people: Vec<String> = (1..=PEOPLE).map(|i| format!("+1654{i:07}")).collect();
    for chunk in people.chunks(10_000) {
        f.opt_in(NUMBER_A, chunk).await?;
    }
    f.approved_template("order_update", "utility", ORDER_UPDATE)
        .await?;
    let body = audience(&people);
    let query = format!(
        "phone_number_id={NUMBER_A}&template=order_update{}",
        ramp.query
    );
    let created = create(&f, &query, body).await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let plan: Vec<u64> = planned(&created, "sends")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let tiers = planned(&created, "tier");
    assert_eq!(plan.iter().sum::<u64>(), PEOPLE, "{created}");
    assert_eq!(
        created["plan"]["upgrade"]["to"], ramp.first_upgrade,
        "{created}"
    );
    assert!(plan.len() > ramp.kill_day.max(ramp.pause_day), "{plan:?}");

    act(&f, &id, "start").await?;
    let mut cumulative = 0;
    for (day, &sends) in plan.iter().enumerate() {
        let day_starts = START_UNIX + day as u64 * 86_400 + INTO_THE_DAY;
        let mut decided = day_starts;
        if day == ramp.pause_day {
            // Meta's word overnight: nothing goes until it passes.
            both_clocks(&f, &base, day_starts - 3_600).await?;
            tell(&f, &base, &ramp.pause).await?;
            wait_campaign(&f, &id, |v| v["state"] == "paused").await?;
        }
        both_clocks(&f, &base, day_starts).await?;
        // Meta's tier that day is the plan's: each upgrade came when the plan said.
        let usage = number_usage(&f, NUMBER_A).await?;
        assert_eq!(usage["tier"], tiers[day], "day {day} of {plan:?}: {usage}");
        if day == ramp.pause_day {
            // A new day and room under the limit, but paused: nobody fed.
            let paused = campaign(&f, &id).await?;
            assert_eq!(paused["counts"]["fed"], cumulative, "{paused}");
            assert_eq!(paused["paused_by"], ramp.paused_by, "{paused}");
            decided += ramp.goes_on_after;
            both_clocks(&f, &base, decided).await?;
            match &ramp.goes_on {
                Some(word) => tell(&f, &base, word).await?,
                None => {
                    act(&f, &id, "resume").await?;
                }
            }
        }
        cumulative += sends;
        wait_campaign(&f, &id, |v| v["counts"]["fed"] == cumulative).await?;
        // The day's sends reach Meta at the number's pace (1,000 a second from the second
        // they were decided in), each second's before the clocks move on: Meta stamps them
        // in the second wagate planned them for.
        let before = cumulative - sends;
        let mut second = decided;
        loop {
            let due = before + sends.min(1 + 1_000 * (second - decided));
            sends_at_meta(&f, &base, due).await?;
            if due == cumulative {
                break;
            }
            if day == ramp.kill_day && second == decided + 5 {
                // Killed mid-day with sends still due: nobody is sent twice after.
                none_in_flight(&f).await?;
                f.wagate.take().expect("running").kill()?;
                f.restart()?;
                // The server came back on a new port: Meta's webhooks follow it there.
                mock.set_webhook_url(&f.url("/webhooks/meta"));
                set_clock(&f, second).await?;
            }
            second += 1;
            both_clocks(&f, &base, second).await?;
        }
        let seen = mock_report(&f, &base).await?;
        assert_eq!(seen["violations_by_code"], json!({}), "day {day}");
    }
    let done = wait_campaign(&f, &id, |v| {
        v["state"] == "done" && v["counts"]["delivered"] == PEOPLE
    })
    .await?;
    let seen = mock_report(&f, &base).await?;
    let verdicts = json!([
        seen["accepted"],
        seen["violations_by_code"],
        seen["duplicates"]
    ]);
    assert_eq!(verdicts, json!([PEOPLE, {}, 0]), "{}", done["counts"]);
    assert_eq!(done["counts"]["days"], json!(plan), "{done}");
    assert_eq!(done["counts"]["accepted"], PEOPLE, "{done}");
    assert_eq!(done["counts"]["sent"], PEOPLE, "{done}");
    // Meta's webhooks of the last day are in: nothing left unanswered at mock-meta.
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while mock_report(&f, &base).await?["webhooks_pending"] != 0 {
        assert!(tokio::time::Instant::now() < deadline, "Meta's webhooks");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.stop()
}
