//! Sender pools: a send to `pool:<name>` goes from the number the person last talked with,
//! otherwise from the healthy number with the most room (so new people spread over the pool),
//! never from one rated red; a retry with the same idempotency key is the same send.

use crate::support::fixture::*;
use crate::WAIT;
use anyhow::Result;
use serde_json::json;

const NUMBER_C: u64 = 1004;
const NUMBER_D: u64 = 1005;
const GAMMA: &str = "gamma-token-0123456789";

/// A server with tenant gamma (its pool), `people` opted in to its business and its
/// `order_update` approved.
async fn gamma_ready(name: &str, people: &[String]) -> Result<Fixture> {
    let f = Fixture::start(name, &gamma_with_a_pool()).await?;
    let opted = f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_C.to_string(), "to": people,
                    "change": "opt_in" }),
        )
        .await?;
    assert_eq!(opted.status, 200, "{}", opted.text());
    f.approved_template_of(3, "order_update", "utility", ORDER_UPDATE)
        .await?;
    Ok(f)
}

/// Tenant gamma with two numbers of one business, both in its pool `main`.
fn gamma_with_a_pool() -> String {
    format!(
        r#"
[[tenants]]
name = "gamma"
token = "{GAMMA}"
numbers = [{NUMBER_C}, {NUMBER_D}]
pools = {{ main = [{NUMBER_C}, {NUMBER_D}] }}

[[numbers]]
id = {NUMBER_C}
account = 3
portfolio = 3
throughput_mps = 1000

[[numbers]]
id = {NUMBER_D}
account = 3
portfolio = 3
throughput_mps = 1000
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sticks_to_the_persons_number_and_passes_over_a_red_one() -> Result<()> {
    let (xena, yuri, zoe) = (person(1), person(2), person(3));
    let others: Vec<String> = (4..=7).map(person).collect();
    let mut everyone = vec![xena.clone(), yuri.clone(), zoe.clone()];
    everyone.extend(others.iter().cloned());
    let mut f = gamma_ready("pools", &everyone).await?;
    let update = |to: &str| template_send(to, "order_update", &["Ada"]);
    let from_number = |f: &Fixture, id: String| {
        let (web, url) = (f.web.clone(), f.url(&format!("/wagate/v1/messages/{id}")));
        async move {
            let view = web.get(&url, GAMMA).await?.json();
            anyhow::Ok(
                view["phone_number_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };

    // Xena wrote to the second number: the pool keeps her there.
    let inbound = f
        .meta_webhook(&inbound_webhook(NUMBER_D, "wamid.p.1", &xena, "hi"), None)
        .await?;
    assert_eq!(inbound.json()["applied"], 1);
    let to_pool = |to: &str, key: Option<&'static str>| {
        let (web, url, body) = (
            f.web.clone(),
            f.url("/v23.0/pool:main/messages"),
            update(to),
        );
        async move {
            let extra: Vec<(&str, &str)> =
                key.map(|k| ("idempotency-key", k)).into_iter().collect();
            web.post(&url, GAMMA, &body, &extra).await
        }
    };
    let kept = to_pool(&xena, None).await?;
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(
        from_number(&f, kept.message_id()).await?,
        NUMBER_D.to_string()
    );

    // Yuri is new: the first of the roomiest; a retry is the same send.
    let first = to_pool(&yuri, Some("yuri-1")).await?;
    assert_eq!(
        from_number(&f, first.message_id()).await?,
        NUMBER_C.to_string()
    );
    let again = to_pool(&yuri, Some("yuri-1")).await?;
    assert_eq!(again.message_id(), first.message_id(), "{}", again.text());

    // New people one after another: each goes from the number with more room left under its
    // own 24 h limit (per number under whatsapp-2021), so the two take turns.
    let mut picked = Vec::new();
    for who in &others {
        let sent = to_pool(who, None).await?;
        picked.push(from_number(&f, sent.message_id()).await?);
    }
    assert!(picked.windows(2).all(|w| w[0] != w[1]), "{picked:?}");
    assert_eq!(
        picked
            .iter()
            .filter(|n| **n == NUMBER_C.to_string())
            .count(),
        2,
        "{picked:?}"
    );

    // The first number is rated red: Zoe's send fails over to the second.
    let red = f
        .admin(
            &format!("/wagate/admin/numbers/{NUMBER_C}/quality"),
            json!({ "quality": "RED" }),
        )
        .await?;
    assert_eq!(red.status, 200, "{}", red.text());
    let line = json!({ "phone_number_id": "pool:main", "request": update(&zoe) }).to_string();
    let bulk = f.bulk(GAMMA, line).await?;
    let zoe_id = sent_id(
        &serde_json::from_str::<serde_json::Value>(bulk.text().lines().next().unwrap_or_default())?
            ["body"],
    );
    assert_eq!(from_number(&f, zoe_id).await?, NUMBER_D.to_string());

    let unknown = f
        .web
        .post(
            &f.url("/v23.0/pool:other/messages"),
            GAMMA,
            &update(&zoe),
            &[],
        )
        .await?;
    assert_eq!((unknown.status, unknown.code()), (400, Some(100)));
    advance(&f, 1).await?;
    f.meta.wait_for(7, WAIT).await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_pool_send_fails_over_at_release_when_its_number_went_red() -> Result<()> {
    let (yuri, zoe) = (person(2), person(3));
    let mut f = gamma_ready("pools-release", &[yuri.clone(), zoe.clone()]).await?;
    let in_an_hour = (START_UNIX + 3_600).to_string();
    let mut ids = Vec::new();
    for who in [&yuri, &zoe] {
        let scheduled = f
            .web
            .post(
                &f.url("/v23.0/pool:main/messages"),
                GAMMA,
                &template_send(who, "order_update", &["Ada"]),
                &[("x-wagate-send-at", in_an_hour.as_str())],
            )
            .await?;
        assert_eq!(scheduled.status, 200, "{}", scheduled.text());
        ids.push(scheduled.message_id());
    }
    let number_of = |f: &Fixture, id: String| {
        let (web, url) = (f.web.clone(), f.url(&format!("/wagate/v1/messages/{id}")));
        async move { anyhow::Ok(web.get(&url, GAMMA).await?.json()) }
    };
    // Queued on the first of the roomiest (a scheduled send takes no room until it goes).
    let mut planned = Vec::new();
    for id in &ids {
        let view = number_of(&f, id.clone()).await?;
        assert_eq!(view["status"], "queued", "{view}");
        planned.push(view["phone_number_id"].clone());
    }
    assert_eq!(planned, vec![json!(NUMBER_C.to_string()); 2]);
    // Meta rates the first number red meanwhile (an operator records what Meta said).
    let red = f
        .admin(
            &format!("/wagate/admin/numbers/{NUMBER_C}/quality"),
            json!({ "quality": "RED" }),
        )
        .await?;
    assert_eq!(red.status, 200, "{}", red.text());
    advance(&f, 3_600).await?;
    advance(&f, 1).await?;
    // Both go from the second number at its pace: one a second on the manual clock.
    f.meta.wait_for(1, WAIT).await?;
    advance(&f, 1).await?;
    let sent = f.meta.wait_for(2, WAIT).await?;
    // Both went from the healthy number.
    let paths: Vec<String> = sent.iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| p.contains(&format!("/{NUMBER_D}/"))),
        "{paths:?}"
    );
    for id in ids {
        let view = f
            .wait_message(&id, WAIT, |v| v["status"] != "in_flight")
            .await?;
        assert_eq!(
            json!([view["status"], view["phone_number_id"]]),
            json!(["sent", NUMBER_D.to_string()]),
            "{view}"
        );
    }
    f.stop()
}
