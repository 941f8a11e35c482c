//! The operator console, driven in a real headless Chromium over WebDriver against the running
//! server on the manual clock: sign in, a number's usage bar as the admin API says it and
//! moving after sends, a message's life, a template's lint as it is typed, sign out; the
//! read-only token changes nothing; without the cookie or with a forged CSRF token nothing
//! changes. Each page's screenshot goes to `docs/console/` when `WAGATE_CONSOLE_SCREENSHOTS`
//! is set (the README shows them), else beside the test's data.

use std::path::PathBuf;

use crate::support::fixture::*;
use crate::support::webdriver::Browser;
use anyhow::{bail, Result};
use hyper::Method;
use serde_json::{json, Value};

const OPERATOR: &str = "operator-token-0123456789";
/// WebDriver's Enter, Tab and Shift keys.
const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";
const SHIFT: &str = "\u{E008}";

/// Where the screenshots go.
fn shots(f: &Fixture) -> PathBuf {
    match std::env::var_os("WAGATE_CONSOLE_SCREENSHOTS") {
        Some(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/console")),
        None => f.dir.join("screenshots"),
    }
}

async fn shoot(browser: &Browser, f: &Fixture, page: &str) -> Result<()> {
    let dir = shots(f);
    std::fs::create_dir_all(&dir)?;
    let png = browser.screenshot().await?;
    if !png.starts_with(b"\x89PNG") {
        bail!("the screenshot of {page} is no PNG");
    }
    std::fs::write(dir.join(format!("{page}.png")), png)?;
    Ok(())
}

async fn console_server(name: &str) -> Result<Fixture> {
    Fixture::start_with(name, "", &["--admin.operator_token", OPERATOR]).await
}

async fn sign_in(browser: &Browser, f: &Fixture, token: &str) -> Result<()> {
    browser.goto(&f.url("/console")).await?;
    browser.type_into("#token", token).await?;
    // By keyboard: Enter in the field submits the form.
    browser.press(ENTER).await?;
    browser.find("#who").await?;
    browser
        .wait_text("#who", |t| t.starts_with("signed in"))
        .await?;
    Ok(())
}

/// The admin API's "used / limit" of `number`, as the console writes it.
async fn usage_figure(f: &Fixture, number: u64) -> Result<String> {
    let usage = number_usage(f, number).await?;
    Ok(format!(
        "{} / {}",
        usage["unique_recipients_24h"], usage["limit_24h"]
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_watches_a_number_reads_a_message_s_life_and_lints_a_template(
) -> Result<()> {
    let f = console_server("console-admin").await?;
    let people: Vec<String> = (1..=3).map(|i| person(700 + i)).collect();
    f.ready_to_send(&people).await?;
    let browser = Browser::start(&f.dir.join("chromium")).await?;
    // A wrong token is told so, on the sign-in page.
    browser.goto(&f.url("/console")).await?;
    shoot(&browser, &f, "sign-in").await?;
    browser.type_into("#token", "not-a-token").await?;
    browser.click("#sign-in-button").await?;
    browser
        .wait_text("#sign-in-error", |t| t.contains("neither"))
        .await?;
    sign_in(&browser, &f, ADMIN).await?;
    // The number's bar says what the admin API says, and moves with the sends.
    let row = format!("#usage-{NUMBER_A}");
    let before = usage_figure(&f, NUMBER_A).await?;
    assert_eq!(before, "0 / 1000");
    browser.wait_text(&row, |t| t == before).await?;
    let mut first = String::new();
    for to in &people {
        let sent = f.send_update(to).await?;
        assert_eq!(sent.status, 200, "{}", sent.text());
        if first.is_empty() {
            first = sent.message_id();
        }
    }
    let after = usage_figure(&f, NUMBER_A).await?;
    assert_eq!(after, "3 / 1000");
    browser.wait_text(&row, |t| t == after).await?;
    let meter = browser
        .run(
            "arguments[1](document.getElementById(arguments[0]).getAttribute('aria-valuenow'))",
            json!([format!("usage-bar-{NUMBER_A}")]),
        )
        .await?;
    assert_eq!(meter, json!("3"));
    let row = browser.text(&format!("#number-{NUMBER_A}")).await?;
    assert!(
        row.contains("1000/s"),
        "the throughput it is paced at: {row}"
    );
    shoot(&browser, &f, "numbers").await?;
    // A number's own page: the three counted now leave the window in 24 h, in the last bar.
    let capacity = f
        .web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/capacity")),
            ADMIN,
        )
        .await?
        .json();
    let mut expected = vec![0; 24];
    expected[23] = 3;
    assert_eq!(capacity["frees_by_hour"], json!(expected), "{capacity}");
    browser.click(&format!("#number-{NUMBER_A} a")).await?;
    browser
        .wait_text("h1", |t| t == format!("Number {NUMBER_A}"))
        .await?;
    browser.find(&format!("#capacity-{NUMBER_A}")).await?;
    let bars = browser
        .run(
            "arguments[1](Array.from(document.querySelectorAll('#' + arguments[0] + ' rect')).map((r) => Number(r.getAttribute('data-value'))))",
            json!([format!("capacity-{NUMBER_A}")]),
        )
        .await?;
    assert_eq!(bars, json!(expected));
    shoot(&browser, &f, "number").await?;
    // A message's life.
    browser.click("#nav-messages").await?;
    browser.type_into("#message-id", &first).await?;
    browser.click("#message-submit").await?;
    let life = browser
        .wait_text("#message-life", |t| t.contains("decided"))
        .await?;
    assert!(life.contains("utility"), "{life}");
    assert!(life.contains("dispatch:"), "{life}");
    shoot(&browser, &f, "message").await?;
    // A template, its lint shown as it is typed, then created.
    browser.click("#nav-templates").await?;
    browser.type_into("#t-name", "shipping_note").await?;
    browser
        .type_into("#t-body", "Your order ships on {{1}}")
        .await?;
    let lint = browser
        .wait_text("#lint", |t| t.contains("variable_at_edge"))
        .await?;
    assert!(lint.contains("#"), "{lint}");
    // Each template's history: order_update's review and approval.
    let history = browser.text("#template-1-order_update-en_US").await?;
    assert!(history.contains("2 changes"), "{history}");
    shoot(&browser, &f, "templates").await?;
    browser.click("#template-submit").await?;
    browser
        .wait_text("#template-result", |t| t.contains("Created shipping_note"))
        .await?;
    let listed = f
        .web
        .get(&f.url("/wagate/admin/templates"), ADMIN)
        .await?
        .json();
    assert!(
        listed["data"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "shipping_note")),
        "{listed}"
    );
    // What waits: a send scheduled for later, and a campaign with its plan.
    let later = f
        .send(
            ALPHA,
            NUMBER_A,
            &template_send(&people[1], "order_update", &["Ada"]),
            &[("x-wagate-send-at", &(START_UNIX + 3_600).to_string())],
        )
        .await?;
    assert_eq!(later.status, 200, "{}", later.text());
    let campaign = crate::support::fixture::post_bulk(
        &f.web,
        &f.url(&format!(
            "/wagate/v1/campaigns?phone_number_id={NUMBER_A}&template=order_update&name=spring"
        )),
        ALPHA,
        people
            .iter()
            .map(|to| json!({ "to": to, "parameters": ["Ada"] }).to_string() + "\n")
            .collect(),
    )
    .await?;
    assert_eq!(campaign.status, 201, "{}", campaign.text());
    browser.click("#nav-queues").await?;
    let waiting = browser
        .wait_text("#queued", |t| t.contains(&later.message_id()))
        .await?;
    assert!(waiting.contains("scheduled"), "{waiting}");
    browser
        .wait_text("#campaigns", |t| t.contains("spring") && t.contains("of 3"))
        .await?;
    shoot(&browser, &f, "queues").await?;
    // Its time comes: released, and the page counts it.
    advance(&f, 3_600).await?;
    browser
        .wait_text("#released-per-minute", |t| t.starts_with("1 in the last"))
        .await?;
    // A person and the money.
    browser.click("#nav-people").await?;
    browser
        .type_into("#person-number", &NUMBER_A.to_string())
        .await?;
    browser.type_into("#person-person", &people[0]).await?;
    browser.click("#person-submit").await?;
    browser
        .wait_text("#person-view", |t| t.contains("opted_in"))
        .await?;
    shoot(&browser, &f, "people").await?;
    browser.click("#nav-money").await?;
    browser.find("#ledger").await?;
    shoot(&browser, &f, "money").await?;
    // Signed out: the sign-in page again, and the session's cookie opens nothing more.
    let cookie = browser.cookie("wagate_console").await?;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let old = cookie["value"].as_str().unwrap_or_default().to_string();
    browser.click("#sign-out-button").await?;
    browser.find("#token").await?;
    assert!(browser.url().await?.ends_with("/console"));
    let after_sign_out = with_cookie(&f, Method::GET, "/console/session", &old, &[], "").await?;
    assert_eq!(after_sign_out.0, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_2025_a_portfolio_s_numbers_show_the_limit_they_share() -> Result<()> {
    let f = Fixture::start_with("console-2025", "", &["--engine.profile", "whatsapp-2025"]).await?;
    let people: Vec<String> = (1..=2).map(|i| person(800 + i)).collect();
    f.ready_to_send(&people).await?;
    let browser = Browser::start(&f.dir.join("chromium")).await?;
    sign_in(&browser, &f, ADMIN).await?;
    let scope = browser
        .wait_text(&format!("#number-{NUMBER_A}"), |t| {
            t.contains("portfolio 1")
        })
        .await?;
    assert!(scope.contains("TIER_250"), "{scope}");
    for to in &people {
        let sent = f.send_update(to).await?;
        assert_eq!(sent.status, 200, "{}", sent.text());
    }
    // Sent from one number, counted on the portfolio: both its numbers show it.
    for number in [NUMBER_A, NUMBER_A2] {
        assert_eq!(usage_figure(&f, number).await?, "2 / 250");
        browser
            .wait_text(&format!("#usage-{number}"), |t| t == "2 / 250")
            .await?;
    }
    // By keyboard alone: back through the header to Templates, and Enter.
    let focused = || browser.run("arguments[0](document.activeElement.id)", json!([]));
    let mut reached = false;
    for _ in 0..12 {
        browser.chord(&[SHIFT, TAB]).await?;
        if focused().await? == json!("nav-templates") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Shift+Tab never reached the Templates link");
    browser.press(ENTER).await?;
    browser.wait_text("h1", |t| t == "Templates").await?;
    Ok(())
}

/// A request with the console cookie `session` (and `headers`), as another page might send it.
async fn with_cookie(
    f: &Fixture,
    method: Method,
    path: &str,
    session: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value)> {
    let cookie = format!("wagate_console={session}");
    let mut all = vec![
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    let answer = f
        .web
        .request(method, &f.url(path), &all, body.to_string())
        .await?;
    Ok((answer.status, answer.json()))
}

/// Signs in over plain HTTP as the console's form does: the session cookie's value.
async fn form_sign_in(f: &Fixture, token: &str) -> Result<String> {
    let answer = f
        .web
        .request(
            Method::POST,
            &f.url("/console/sign-in"),
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("token={token}"),
        )
        .await?;
    if answer.status != 303 {
        bail!("sign-in answered {}", answer.status);
    }
    let set = answer
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(set
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("wagate_console="))
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_token_changes_nothing_and_forged_requests_are_refused() -> Result<()> {
    let f = console_server("console-operator").await?;
    let template = json!({ "account": 1, "name": "promo", "language": "en_US",
                           "category": "marketing", "body": "Hello {{1}}, new arrivals." })
    .to_string();
    let created = |f: &Fixture| {
        let url = f.url("/wagate/admin/templates");
        let web = f.web.clone();
        async move {
            let listed = web.get(&url, ADMIN).await?.json();
            Ok::<bool, anyhow::Error>(
                listed["data"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["name"] == "promo")),
            )
        }
    };
    // The operator, in the browser: figures yes, a template no.
    let browser = Browser::start(&f.dir.join("chromium")).await?;
    sign_in(&browser, &f, OPERATOR).await?;
    browser
        .wait_text("#who", |t| t.contains("operator"))
        .await?;
    browser.find(&format!("#usage-{NUMBER_A}")).await?;
    browser.click("#nav-templates").await?;
    browser.type_into("#t-name", "promo").await?;
    browser
        .type_into("#t-body", "Hello {{1}}, new arrivals.")
        .await?;
    browser.click("#template-submit").await?;
    browser
        .wait_text("#template-result", |t| t.contains("reads only"))
        .await?;
    assert!(!created(&f).await?, "the operator created nothing");
    // Its cookie, sent by any page, changes nothing either, CSRF token or not.
    let operator = browser.cookie("wagate_console").await?["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, session) = with_cookie(&f, Method::GET, "/console/session", &operator, &[], "").await?;
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    let refused = with_cookie(
        &f,
        Method::POST,
        "/wagate/admin/templates",
        &operator,
        &[("x-csrf-token", &csrf)],
        &template,
    )
    .await?;
    assert_eq!(refused.0, 403, "{}", refused.1);
    // An admin session: without the cookie, a forged cookie, no CSRF token, a forged one, or
    // another origin, nothing is created; its own page's request is.
    let admin = form_sign_in(&f, ADMIN).await?;
    let (_, session) = with_cookie(&f, Method::GET, "/console/session", &admin, &[], "").await?;
    assert_eq!(session["role"], "admin");
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    let no_cookie = f
        .web
        .request(
            Method::POST,
            &f.url("/wagate/admin/templates"),
            &[("content-type", "application/json")],
            template.clone(),
        )
        .await?;
    assert_eq!(no_cookie.status, 401);
    let forged_cookie = with_cookie(
        &f,
        Method::POST,
        "/wagate/admin/templates",
        &"0".repeat(64),
        &[("x-csrf-token", &csrf)],
        &template,
    )
    .await?;
    assert_eq!(forged_cookie.0, 401, "{}", forged_cookie.1);
    for headers in [
        vec![],
        vec![("x-csrf-token", "0".repeat(64))],
        vec![
            ("x-csrf-token", csrf.clone()),
            ("origin", "http://evil.example".to_string()),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = with_cookie(
            &f,
            Method::POST,
            "/wagate/admin/templates",
            &admin,
            &headers,
            &template,
        )
        .await?;
        assert_eq!(answer.0, 403, "{headers:?}: {}", answer.1);
        assert_eq!(answer.1["error"]["type"], "OAuthException");
    }
    assert!(!created(&f).await?, "nothing forged created anything");
    let own = with_cookie(
        &f,
        Method::POST,
        "/wagate/admin/templates",
        &admin,
        &[("x-csrf-token", &csrf)],
        &template,
    )
    .await?;
    assert_eq!(own.0, 200, "{}", own.1);
    assert!(created(&f).await?);
    // A sign-out with a forged CSRF token leaves the session open.
    let forged_out = f
        .web
        .request(
            Method::POST,
            &f.url("/console/sign-out"),
            &[
                ("cookie", &format!("wagate_console={admin}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "csrf=forged".to_string(),
        )
        .await?;
    assert_eq!(forged_out.status, 403);
    let (status, _) = with_cookie(&f, Method::GET, "/console/session", &admin, &[], "").await?;
    assert_eq!(status, 200);
    Ok(())
}
