//! Automations as data: a business's own event (`POST /wagate/v1/events`) schedules its
//! tenant's reminder before the event's time, once per event id, never after the event.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

/// Beta (the last tenant of the fixture's config) reminds a day before an appointment.
const AUTOMATION: &str = r#"
[[tenants.automations]]
event = "appointment_booked"
template = "appointment_reminder"
remind_before_secs = 86400
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_booked_schedules_its_reminder_a_day_before_once() -> Result<()> {
    let mut f = Fixture::start("automations", AUTOMATION).await?;
    let ana = person(1);
    f.opt_in(NUMBER_B, std::slice::from_ref(&ana)).await?;
    f.approved_template_of(2, "appointment_reminder", "utility", "See you at {{1}}")
        .await?;
    let event = |at: u64, id: &str| {
        json!({ "event": "appointment_booked", "phone_number_id": NUMBER_B.to_string(),
                "to": ana, "at": at, "parameters": ["15:00"], "id": id })
    };
    let post = |body: Value| {
        let (web, url) = (f.web.clone(), f.url("/wagate/v1/events"));
        async move { web.post(&url, BETA, &body, &[]).await }
    };
    let appointment = START_UNIX + 2 * 86_400;
    let booked = post(event(appointment, "booking-7")).await?;
    assert_eq!(booked.status, 200, "{}", booked.text());
    let booked = booked.json();
    let send = &booked["sends"][0];
    assert_eq!(send["send_at"], appointment - 86_400, "{booked}");
    assert_eq!(
        send["body"]["messages"][0]["message_status"], "queued",
        "{booked}"
    );
    let id = send["body"]["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The same event again (a retry of the business's) schedules nothing more.
    let again = post(event(appointment, "booking-7")).await?.json();
    assert_eq!(
        again["sends"][0]["body"]["messages"][0]["id"], id,
        "{again}"
    );
    // An event nobody automated, or without a time, is refused in Meta's shape.
    let mut unknown = event(appointment, "x");
    unknown["event"] = json!("birthday");
    assert_eq!(post(unknown).await?.code(), Some(100));
    let mut timeless = event(appointment, "y");
    timeless["at"] = json!(true);
    assert_eq!(post(timeless).await?.code(), Some(100));

    // Not a second early; at the planned second, to the person, with the event's parameter.
    advance(&f, 86_400 - 1).await?;
    assert!(f.meta.received().is_empty());
    advance(&f, 1).await?;
    let sent = f.meta.wait_for(1, crate::WAIT).await?;
    let body = sent[0].json();
    assert_eq!(body["template"]["name"], "appointment_reminder");
    assert_eq!(
        body["template"]["components"][0]["parameters"][0]["text"],
        "15:00"
    );
    // A booking for a time already past sends no reminder: it is refused as expired.
    let late = post(event(START_UNIX + 10, "booking-8")).await?.json();
    assert_eq!(late["sends"][0]["body"]["error"]["code"], 470_004, "{late}");
    f.stop()
}
