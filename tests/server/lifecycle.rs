//! Stops, crashes and restarts: what is finished, what stays in flight for an operator, and
//! how the clock and the command line are taken.

use std::time::Duration;

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

use super::{sent_while_meta_holds, WAIT};

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
