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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_is_answered_once_per_message_and_a_loop_stops_at_five_an_hour() -> Result<()> {
    let config = r#"
[[tenants.automations]]
keyword = "menu"
text = "1) Orders 2) Help"
"#;
    let mut f = Fixture::start("automations-keyword", config).await?;
    let ana = person(1);
    let digits = ana.trim_start_matches('+').to_string();
    let says = |wamid: &str, text: &str| inbound_webhook(NUMBER_B, wamid, &digits, text);
    let answers = |f: &Fixture| {
        f.meta
            .received()
            .iter()
            .filter(|r| r.json()["text"]["body"] == "1) Orders 2) Help")
            .count()
    };
    assert_eq!(
        f.meta_webhook(&says("wamid.a1", " MENU "), None)
            .await?
            .status,
        200
    );
    let sent = f.meta.wait_for(1, crate::WAIT).await?;
    assert_eq!(sent[0].json()["to"], digits);
    // Meta's retry of the same message is not answered again; other words are not answered.
    f.meta_webhook(&says("wamid.a1", " MENU "), None).await?;
    f.meta_webhook(&says("wamid.a2", "hello"), None).await?;
    advance(&f, 10).await?;
    assert_eq!(answers(&f), 1);
    // An automated party writing back again and again: five answers an hour, then held.
    for i in 3..=9 {
        advance(&f, 10).await?;
        f.meta_webhook(&says(&format!("wamid.a{i}"), "menu"), None)
            .await?;
    }
    advance(&f, 10).await?;
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while answers(&f) < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{}", answers(&f));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let metrics = f.web.get(&f.url("/metrics"), "").await?.text();
    assert_eq!(
        metric_value(&metrics, "wagate_automated_replies_total"),
        Some(5.0)
    );
    assert_eq!(
        metric_value(&metrics, "wagate_automated_replies_held_total"),
        Some(3.0)
    );
    assert_eq!(answers(&f), 5);
    // An hour on, the person is answered again.
    advance(&f, 3_600).await?;
    f.meta_webhook(&says("wamid.a10", "Menu"), None).await?;
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while answers(&f) < 6 {
        assert!(tokio::time::Instant::now() < deadline, "{}", answers(&f));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_order_update_is_followed_up_an_hour_later_once_and_never_a_follow_up() -> Result<()>
{
    let config = r#"
[[tenants.automations]]
status = "read"
of_template = "order_update"
template = "feedback_request"
after_secs = 3600
"#;
    let mut f = Fixture::start("automations-status", config).await?;
    let (ana, bea) = (person(1), person(2));
    f.opt_in(NUMBER_B, &[ana.clone(), bea.clone()]).await?;
    for (name, body) in [
        ("order_update", "Your order {{1}} is on its way"),
        ("feedback_request", "How did we do?"),
        ("shipping_notice", "Shipped: {{1}}"),
    ] {
        f.approved_template_of(2, name, "utility", body).await?;
    }
    let read = |wamid: &str, to: &str| status_webhook(NUMBER_B, wamid, "read", &to[1..]);
    let order = sent_by_beta(&f, &ana, "order_update", 1).await?;
    let notice = sent_by_beta(&f, &bea, "shipping_notice", 2).await?;
    // Ana read her order update: a follow-up in an hour; Bea's read of another template, and
    // Meta's repeat of Ana's, set nothing going.
    for webhook in [read(&order, &ana), read(&notice, &bea), read(&order, &ana)] {
        assert_eq!(f.meta_webhook(&webhook, None).await?.status, 200);
    }
    let url = f.url(&format!("/wagate/v1/scheduled?phone_number_id={NUMBER_B}"));
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    let queued = loop {
        let queued = f.web.get(&url, BETA).await?.json();
        if queued["data"].as_array().is_some_and(|q| !q.is_empty()) {
            break queued;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queued}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let due: Vec<Value> = queued["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| json!([q["to"], q["queued_until"]]))
        .collect();
    let read_at = START_UNIX + 2;
    assert_eq!(due, [json!([&ana[1..], read_at + 3_600])], "{queued}");
    // Not a second early; then to Ana, the follow-up's template.
    advance(&f, 3_600 - 1).await?;
    assert_eq!(f.meta.received().len(), 2);
    advance(&f, 1).await?;
    let all = f.meta.wait_for(3, crate::WAIT).await?;
    let follow_up = all[2].json();
    assert_eq!(
        json!([follow_up["to"], follow_up["template"]["name"]]),
        json!([&ana[1..], "feedback_request"])
    );
    // Ana reads the follow-up too (once wagate has Meta's answer for it): an automation's own
    // message sets nothing more going.
    let follow_up_id = queued["data"][0]["id"].as_str().unwrap_or_default();
    let settled = f
        .wait_message(follow_up_id, crate::WAIT, |v| v["upstream_id"].is_string())
        .await?;
    let webhook = read(settled["upstream_id"].as_str().unwrap_or_default(), &ana);
    assert_eq!(f.meta_webhook(&webhook, None).await?.json()["applied"], 1);
    advance(&f, 3_600).await?;
    let queued = f.web.get(&url, BETA).await?.json();
    assert_eq!(queued["data"], json!([]), "{queued}");
    assert_eq!(f.meta.received().len(), 3);
    let metrics = f.web.get(&f.url("/metrics"), "").await?.text();
    assert_eq!(
        metric_value(&metrics, "wagate_automated_replies_total"),
        Some(1.0)
    );
    f.stop()
}

/// Sends Beta's `template` to `to`, the `n`th send Meta takes, and waits until it is settled:
/// its wamid.
async fn sent_by_beta(f: &Fixture, to: &str, template: &str, n: usize) -> Result<String> {
    let send = template_send(to, template, &["7"]);
    let answer = f.send(BETA, NUMBER_B, &send, &[]).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let id = answer.json()["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    advance(f, 1).await?;
    f.meta.wait_for(n, crate::WAIT).await?;
    let view = f
        .wait_message(&id, crate::WAIT, |v| v["upstream_id"].is_string())
        .await?;
    Ok(view["upstream_id"].as_str().unwrap_or("").to_string())
}
