//! Quiet hours in the person's local time: a tenant's marketing waits for the person's
//! allowed hours (their calling code's zone, or the zone the sender names), utility does not,
//! and a held send goes at the allowed minute's first second.

use crate::support::fixture::*;
use crate::WAIT;
use anyhow::Result;
use serde_json::json;

const NUMBER_C: u64 = 1004;
const GAMMA: &str = "gamma-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketing_waits_for_the_persons_morning_in_their_own_zone() -> Result<()> {
    let tenant = format!(
        r#"
[[tenants]]
name = "gamma"
token = "{GAMMA}"
numbers = [{NUMBER_C}]
quiet_hours = {{ allowed_from = "09:00", allowed_to = "21:00" }}

[[numbers]]
id = {NUMBER_C}
account = 3
portfolio = 3
throughput_mps = 1000
"#
    );
    let mut f = Fixture::start("quiet-hours", &tenant).await?;
    // 00:00 UTC: 05:30 in India, 19:00 the day before in New York, 09:00 at +09:00.
    let (india, new_york, tokyo) = ("+919876543210", "+16505550001", "+16505550002");
    let opted = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_C.to_string(), "to": [india, new_york, tokyo],
                    "change": "opt_in" }),
        )
        .await?;
    assert_eq!(opted.status, 200, "{}", opted.text());
    f.approved_template_of(3, "promo", "marketing", "Big sale {{1}}!")
        .await?;
    f.approved_template_of(3, "order_update", "utility", ORDER_UPDATE)
        .await?;
    let f_ref = &f;
    let send = |to: &str, name: &str, zone: Option<&'static str>| {
        let body = template_send(to, name, &["Ada"]);
        async move {
            let headers: Vec<(&str, &str)> = zone
                .map(|z| ("x-wagate-time-zone", z))
                .into_iter()
                .collect();
            f_ref.send(GAMMA, NUMBER_C, &body, &headers).await
        }
    };
    let status = |answer: &crate::support::web::Answer| {
        answer.json()["messages"][0]["message_status"].clone()
    };

    let held = send(india, "promo", None).await?;
    assert_eq!(status(&held), "queued", "{}", held.text());
    let view = f.message(GAMMA, &held.message_id()).await?.json();
    assert_eq!(
        (view["reason"].clone(), view["queued_until"].clone()),
        (json!("quiet_hours"), json!(START_UNIX + 3 * 3_600 + 1_800)),
        "{view}"
    );
    let utility = send(india, "order_update", None).await?;
    assert_eq!(
        status(&utility),
        "accepted",
        "utility is not held: {}",
        utility.text()
    );
    let evening = send(new_york, "promo", None).await?;
    assert_eq!(
        status(&evening),
        "accepted",
        "19:00 in New York: {}",
        evening.text()
    );
    let own_zone = send(tokyo, "promo", Some("+09:00")).await?;
    assert_eq!(
        status(&own_zone),
        "accepted",
        "the zone the sender names: {}",
        own_zone.text()
    );
    let wrong_zone = send(tokyo, "promo", Some("+9")).await?;
    assert_eq!((wrong_zone.status, wrong_zone.code()), (400, Some(100)));

    // A second before 09:00 in India it still waits; at 09:00 it goes.
    advance(&f, 3 * 3_600 + 1_799).await?;
    assert_eq!(
        f.message(GAMMA, &held.message_id()).await?.json()["status"],
        "queued"
    );
    advance(&f, 1).await?;
    let view = f
        .wait_message(&held.message_id(), WAIT, |v| v["status"] == "sent")
        .await?;
    assert_eq!(
        view["accepted_at"],
        START_UNIX + 3 * 3_600 + 1_800,
        "{view}"
    );
    f.stop()
}
