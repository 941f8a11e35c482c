//! "Why did this person get this message": a message's status names the consent events it
//! relied on when it was decided, and keeps naming them after the person's consent moved on.

use crate::support::fixture::*;
use crate::WAIT;
use anyhow::Result;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_names_the_consent_it_relied_on_when_it_was_decided() -> Result<()> {
    let mut f = Fixture::start("why-sent", "[consent]\ntopics = [\"newsletter\"]\n").await?;
    f.approved_template("order_update", "utility", ORDER_UPDATE)
        .await?;
    let ana = person(1);
    let change = |body: serde_json::Value| f.admin("/wagate/admin/contacts/consent", body);
    let opt_in = change(json!({ "phone_number_id": NUMBER_A2.to_string(), "to": ana,
        "change": "opt_in", "source": "web_form",
        "evidence": { "form_url": "https://shop.example/join", "ip_address": "203.0.113.7" } }))
    .await?;
    assert_eq!(opt_in.status, 200, "{}", opt_in.text());
    advance(&f, 10).await?;
    let newsletter = change(json!({ "phone_number_id": NUMBER_A.to_string(), "to": ana,
        "change": "opt_out", "topics": ["newsletter"] }))
    .await?;
    assert_eq!(newsletter.status, 200, "{}", newsletter.text());
    advance(&f, 10).await?;
    let sent = f.send_update(&ana).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    advance(&f, 1).await?;
    f.wait_message(&sent.message_id(), WAIT, |v| v["status"] == "sent")
        .await?;
    // The person opts out afterwards: the message still names what it relied on then.
    advance(&f, 10).await?;
    let out = change(json!({ "phone_number_id": NUMBER_A.to_string(), "to": ana,
        "change": "opt_out" }))
    .await?;
    assert_eq!(out.status, 200, "{}", out.text());
    f.stop()?;
    f.restart()?;
    for token in [ADMIN, ALPHA] {
        let view = f.message(token, &sent.message_id()).await?.json();
        let relied = &view["consent_relied_on"];
        assert_eq!(relied["all"]["change"], "opt_in", "{view}");
        assert_eq!(relied["all"]["source"], "web_form");
        assert_eq!(relied["all"]["phone_number_id"], NUMBER_A2.to_string());
        assert_eq!(relied["all"]["at"], START_UNIX);
        assert_eq!(
            relied["all"]["evidence"]["form_url"],
            "https://shop.example/join"
        );
        assert_eq!(relied["newsletter"]["change"], "topics_opt_out");
        assert_eq!(relied["utility"]["change"], "opt_in", "{relied}");
    }
    f.stop()
}
