//! Money as Meta charges it: the rate card in effect when a message is accepted prices it,
//! cards are data an operator may replace (`engine.rate_cards_dir`), and Meta's 2026-10-01
//! change (service messages beyond a monthly allowance per number, and utility templates in the
//! window, charged) takes effect on its date, here on the manual clock.

use anyhow::Result;
use serde_json::{json, Value};

use crate::support::fixture::*;

/// 2026-10-01T00:00:00Z.
const OCTOBER_2026: u64 = 1_790_812_800;

fn card(effective_from: &str, in_window_free: bool, service_free: Option<u32>) -> String {
    let service = service_free.map_or(String::new(), |n| {
        format!("service_free_per_number_month = {n}\n")
    });
    format!(
        r#"profile = "whatsapp-2025"
effective_from = "{effective_from}"

[pricing]
model = "per_category"
utility_in_window_free = {in_window_free}
{service}
[[pricing.markets]]
name = "Everywhere"
prefixes = [""]
marketing_micros = 25000
utility_micros = 3400
authentication_micros = 3400
"#
    )
}

/// A server on `whatsapp-2025` whose rate cards are `files` ((name, text) in a fresh directory).
async fn with_cards(name: &str, files: &[(&str, &str)]) -> Result<Fixture> {
    let cards = fresh_dir(&format!("{name}-cards"));
    std::fs::create_dir_all(&cards)?;
    for (file, text) in files {
        std::fs::write(cards.join(file), text)?;
    }
    let dir = cards.display().to_string();
    Fixture::start_with(
        name,
        "",
        &[
            "--engine.profile",
            "whatsapp-2025",
            "--engine.rate_cards_dir",
            dir.as_str(),
        ],
    )
    .await
}

/// wagate's clock, in Unix seconds.
async fn clock_now(f: &Fixture) -> Result<u64> {
    let clock = f
        .web
        .get(&f.url("/wagate/admin/clock"), ADMIN)
        .await?
        .json();
    Ok(clock["now_unix_secs"].as_u64().unwrap_or_default())
}

async fn price_of(f: &Fixture, answer: &crate::support::web::Answer) -> Result<Value> {
    anyhow::ensure!(answer.status == 200, "{}", answer.text());
    Ok(f.message(ALPHA, &answer.message_id()).await?.json()["price_micros"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_in_effect_prices_a_message_and_meta_s_2026_10_01_change_lands_on_its_date(
) -> Result<()> {
    // The change, with an allowance of two service messages a month to keep the test short.
    let mut f = with_cards(
        "pricing",
        &[
            ("2025-07-01.toml", &card("2025-07-01", true, None)),
            ("2026-10-01.toml", &card("2026-10-01", false, Some(2))),
            ("README.txt", "not a card"),
        ],
    )
    .await?;
    let ana = person(1);
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    let writes = |wamid: &str| inbound_webhook(NUMBER_A, wamid, &ana, "hello");
    f.meta_webhook(&writes("wamid.in.1"), None).await?;
    let text = text_send(&ana, "Thanks for writing");
    let update = template_send(&ana, "order_update", &["Ana"]);

    // Before: service free, a utility template in the window free.
    for request in [&text, &text, &text, &update] {
        let sent = f.send(ALPHA, NUMBER_A, request, &[]).await?;
        assert_eq!(price_of(&f, &sent).await?, 0, "{request}");
    }

    let now = clock_now(&f).await?;
    f.admin(
        "/wagate/admin/clock",
        json!({ "advance_secs": OCTOBER_2026 - now + 60 }),
    )
    .await?;
    f.meta_webhook(&writes("wamid.in.2"), None).await?;
    // From 2026-10-01: the month's first two service messages free, the third charged at the
    // utility rate; a utility template in the window charged.
    let mut prices = Vec::new();
    for request in [&text, &text, &text, &update] {
        let sent = f.send(ALPHA, NUMBER_A, request, &[]).await?;
        prices.push(price_of(&f, &sent).await?);
    }
    assert_eq!(prices, vec![json!(0), json!(0), json!(3400), json!(3400)]);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_card_that_is_not_one_stops_the_start() -> Result<()> {
    // (The message names the file: `rate_cards::tests::a_bad_card_is_refused_with_its_name`.)
    let started = with_cards(
        "pricing-bad",
        &[("broken.toml", "profile = \"whatsapp-2025\"\n")],
    )
    .await;
    assert!(started.is_err(), "a server started on a broken rate card");
    Ok(())
}

/// A status webhook with Meta's pricing of the message.
fn priced(wamid: &str, status: &str, to: &str, pricing: Value) -> Value {
    let mut webhook = status_webhook(NUMBER_A, wamid, status, to);
    webhook["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] = pricing;
    webhook
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_beside_its_estimates_holds_what_meta_says_it_charged_once_per_message(
) -> Result<()> {
    let mut f = Fixture::start(
        "pricing-reconciled",
        "[engine]\nprofile = \"whatsapp-2025\"\n",
    )
    .await?;
    let people: Vec<String> = (1..=3).map(person).collect();
    f.ready_to_send(&people).await?;
    let mut wamids = Vec::new();
    for (i, to) in people.iter().enumerate() {
        let sent = f.send_update(to).await?;
        assert_eq!(price_of(&f, &sent).await?, 3_400, "the estimate");
        // Dispatch is paced on wagate's (manual) clock.
        f.admin("/wagate/admin/clock", json!({ "advance_secs": 1 }))
            .await?;
        let view = f
            .wait_message(&sent.message_id(), super::WAIT, |v| v["status"] == "sent")
            .await?;
        assert_eq!(view["upstream_id"], format!("wamid.stub.{i}"));
        wamids.push(view["upstream_id"].as_str().unwrap_or_default().to_string());
    }
    let regular = |category: &str| json!({ "billable": true, "pricing_model": "PMP", "type": "regular", "category": category });
    // Meta charges the first as utility (twice told: once charged); the second is free; the
    // third Meta prices as marketing, then it is never delivered.
    for (webhook, applied) in [
        (
            priced(&wamids[0], "sent", &people[0], regular("utility")),
            1,
        ),
        (
            priced(&wamids[0], "sent", &people[0], regular("utility")),
            0,
        ),
        (
            priced(
                &wamids[1],
                "delivered",
                &people[1],
                json!({ "billable": false, "pricing_model": "PMP",
                        "type": "free_customer_service", "category": "service" }),
            ),
            1,
        ),
        (
            priced(&wamids[2], "sent", &people[2], regular("marketing")),
            1,
        ),
    ] {
        let answer = f.meta_webhook(&webhook, None).await?;
        assert_eq!(answer.json()["applied"], applied, "{}", answer.text());
    }
    let mut failed = status_webhook(NUMBER_A, &wamids[2], "failed", &people[2]);
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] =
        json!([{ "code": 131_026, "title": "Message undeliverable" }]);
    f.meta_webhook(&failed, None).await?;

    // Across a restart: the rows are on disk.
    f.stop()?;
    f.restart()?;
    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    let row = |category: &str| {
        ledger["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["category"] == category)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let utility = row("utility");
    assert_eq!(
        (
            &utility["messages"],
            &utility["price_micros"],
            &utility["reconciled_messages"],
            &utility["reconciled_micros"]
        ),
        (&json!(2), &json!(6_800), &json!(1), &json!(3_400)),
        "{ledger}"
    );
    let service = row("service");
    assert_eq!(
        (
            &service["reconciled_messages"],
            &service["reconciled_micros"]
        ),
        (&json!(1), &json!(0)),
        "{ledger}"
    );
    let marketing = row("marketing");
    assert_eq!(marketing["reconciled_micros"], 0, "undelivered: {ledger}");
    assert_eq!(marketing["reconciled_messages"], 0, "{ledger}");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_an_ads_referral_is_free_for_72_hours_or_as_long_as_meta_says() -> Result<()> {
    let mut f = Fixture::start("pricing-fep", "[engine]\nprofile = \"whatsapp-2025\"\n").await?;
    let ana = person(1);
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    let mut from_ad = inbound_webhook(NUMBER_A, "wamid.in.ad", &ana, "I saw your ad");
    from_ad["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = json!({
        "source_url": "https://fb.me/ad", "source_type": "ad", "source_id": "120",
        "headline": "Spring sale", "ctwa_clid": "ARAk" });
    f.meta_webhook(&from_ad, None).await?;
    let update = template_send(&ana, "order_update", &["Ana"]);
    let hours = |h: u64| json!({ "advance_secs": h * 3_600 });

    // The reply opens the window; 30 h on, outside the customer-service window, still free.
    let reply = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(price_of(&f, &reply).await?, 0);
    f.admin("/wagate/admin/clock", hours(30)).await?;
    let later = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(price_of(&f, &later).await?, 0, "inside the 72 h");

    // Meta says the window runs longer (its status on a message in it): wagate follows.
    let now = clock_now(&f).await?;
    let mut status = priced(
        "wamid.stub.9",
        "sent",
        &ana,
        json!({ "billable": false, "pricing_model": "PMP", "type": "free_entry_point",
                "category": "referral_conversion" }),
    );
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["conversation"] = json!({
        "id": "fep-1", "expiration_timestamp": (now + 90 * 3_600).to_string(),
        "origin": { "type": "referral_conversion" } });
    assert_eq!(f.meta_webhook(&status, None).await?.json()["applied"], 1);
    f.admin("/wagate/admin/clock", hours(60)).await?;
    let extended = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(price_of(&f, &extended).await?, 0, "Meta's longer window");
    f.admin("/wagate/admin/clock", hours(31)).await?;
    let after = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(price_of(&f, &after).await?, 3_400, "over: charged again");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_s_pricing_before_its_answer_to_the_send_is_booked_once_the_message_is_settled(
) -> Result<()> {
    let (mut f, id) = crate::sent_while_meta_holds("pricing-early", 16).await?;
    let to = person(16);
    let pricing = json!({ "billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility" });
    let early = priced("wamid.stub.0", "sent", &to, pricing);
    f.meta_webhook(&early, None).await?;
    let reconciled = |ledger: &Value| {
        ledger["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| row["reconciled_micros"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    assert_eq!(reconciled(&ledger), 0, "not settled yet: {ledger}");
    f.meta.release();
    f.wait_message(&id, super::WAIT, |v| v["status"] == "sent")
        .await?;
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        let ledger = f
            .web
            .get(&f.url("/wagate/admin/ledger"), ADMIN)
            .await?
            .json();
        if reconciled(&ledger) > 0 {
            // whatsapp-2021's card: 5 cents a charged message.
            assert_eq!(reconciled(&ledger), 50_000, "{ledger}");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never booked: {ledger}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Told again once settled: nothing more.
    f.meta_webhook(&early, None).await?;
    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    assert_eq!(reconciled(&ledger), 50_000, "{ledger}");
    f.stop()
}

/// A card with two markets: North America (`+1`) with a utility volume tier from the
/// month's third message, and everywhere else; two free service messages a month per number.
const TIERED_CARD: &str = r#"profile = "whatsapp-2025"
effective_from = "2025-07-01"

[pricing]
model = "per_category"
utility_in_window_free = false
service_free_per_number_month = 2

[[pricing.markets]]
name = "North America"
prefixes = ["1"]
marketing_micros = 25000
utility_micros = 3400
authentication_micros = 3400
utility_tiers = [{ from = 3, micros = 3000 }]

[[pricing.markets]]
name = "Everywhere"
prefixes = [""]
marketing_micros = 60400
utility_micros = 7700
authentication_micros = 7700
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_tiers_and_the_service_allowance_count_the_month_across_a_restart_and_meta_s_tier_wins(
) -> Result<()> {
    let mut f = with_cards("pricing-tiers", &[("2025-07-01.toml", TIERED_CARD)]).await?;
    // The month on wagate's clock is January 2026 (Meta's tier below names it).
    anyhow::ensure!(
        clock_now(&f).await? < 1_769_904_000,
        "the fixture's clock moved"
    );
    let (ana, uk) = (person(1), "+447911123456".to_string());
    f.ready_to_send(&[ana.clone(), uk.clone()]).await?;
    f.meta_webhook(&inbound_webhook(NUMBER_A, "wamid.in.1", &ana, "hi"), None)
        .await?;
    let text = text_send(&ana, "Thanks for writing");
    let mut prices = Vec::new();
    for request in [
        template_send(&ana, "order_update", &["Ana"]),
        template_send(&ana, "order_update", &["Ana"]),
        text.clone(),
        text.clone(),
        template_send(&uk, "order_update", &["Jo"]),
    ] {
        let sent = f.send(ALPHA, NUMBER_A, &request, &[]).await?;
        prices.push(price_of(&f, &sent).await?);
    }
    assert_eq!(prices, [3_400, 3_400, 0, 0, 7_700].map(|p| json!(p)));

    // After a restart the month goes on from the ledger: Ana's third utility message is in
    // the tier, the number's third service message is charged (at the utility rate).
    f.stop()?;
    f.restart()?;
    let update = template_send(&ana, "order_update", &["Ana"]);
    let third = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(
        price_of(&f, &third).await?,
        3_000,
        "the tier, after a restart"
    );
    let third_text = f.send(ALPHA, NUMBER_A, &text, &[]).await?;
    assert_eq!(
        price_of(&f, &third_text).await?,
        3_400,
        "past the allowance"
    );

    // The ledger, per market.
    let ledger = f
        .web
        .get(&f.url("/wagate/admin/ledger"), ADMIN)
        .await?
        .json();
    let utility = |market: &str| {
        ledger["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["category"] == "utility" && row["market"] == market)
            .map(|row| (row["messages"].clone(), row["price_micros"].clone()))
    };
    assert_eq!(
        utility("North America"),
        Some((json!(3), json!(9_800))),
        "{ledger}"
    );
    assert_eq!(
        utility("Everywhere"),
        Some((json!(1), json!(7_700))),
        "{ledger}"
    );

    // Meta says the portfolio is in the tier of messages 1 to 2 this month: its word wins
    // over wagate's count, and holds across a restart.
    let tier = account_webhook(
        "account_update",
        json!({ "event": "VOLUME_BASED_PRICING_TIER_UPDATE", "volume_tier_info": {
            "tier": "1:2", "pricing_category": "UTILITY", "region": "North America",
            "effective_month": "2026-01" } }),
    );
    assert_eq!(f.meta_webhook(&tier, None).await?.json()["applied"], 1);
    f.stop()?;
    f.restart()?;
    let after_meta = f.send(ALPHA, NUMBER_A, &update, &[]).await?;
    assert_eq!(price_of(&f, &after_meta).await?, 3_400, "Meta's tier");
    f.stop()
}
