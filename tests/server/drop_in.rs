//! wagate as a drop-in for Meta's base URL: calls that are not sends reach Meta through wagate,
//! with Meta's token instead of the tenant's, for what the tenant owns, and Meta's answers come
//! back as Meta gave them.

use anyhow::Result;
use serde_json::{json, Value};

use super::WAIT;
use crate::support::fixture::*;
use crate::support::meta_stub::Scripted;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn metrics(f: &Fixture) -> Result<String> {
    Ok(f.web.get(&f.url("/metrics"), ADMIN).await?.text())
}

/// Fails unless `/metrics` counts each of `facts` among Meta's facts applied.
async fn facts_counted(f: &Fixture, facts: &[&str]) -> Result<()> {
    let metrics = metrics(f).await?;
    for fact in facts {
        let line = format!(r#"wagate_meta_facts_applied_total{{fact="{fact}"}}"#);
        anyhow::ensure!(
            metric_value(&metrics, &line).is_some_and(|n| n >= 1.0),
            "{line} in\n{metrics}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_mark_with_the_typing_indicator_goes_to_meta_now_judged_by_no_rule() -> Result<()> {
    // Nobody opted in and no template exists: any send to this person would be refused.
    let mut f = Fixture::start("drop-in-read-mark", "").await?;
    let mark = json!({ "messaging_product": "whatsapp", "status": "read",
                       "message_id": "wamid.in.1", "typing_indicator": { "type": "text" } });
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "success": true }),
    }]);
    let answer = f.send(ALPHA, NUMBER_A, &mark, &[]).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), json!({ "success": true }));
    let received = f.meta.wait_for(1, WAIT).await?;
    assert_eq!(received[0].path, format!("/v23.0/{NUMBER_A}/messages"));
    assert_eq!(
        received[0].json(),
        mark,
        "the body goes as the caller wrote it"
    );
    assert_eq!(
        received[0].header("authorization"),
        Some(bearer(META_TOKEN).as_str()),
        "Meta's token, never the tenant's wagate token"
    );

    // A tenant with its own Meta token marks with it; Meta's refusal comes back as it is.
    f.meta
        .script([Scripted::meta_error(400, 100, "Invalid parameter")]);
    let refused = f.send(BETA, NUMBER_B, &mark, &[]).await?;
    assert_eq!((refused.status, refused.code()), (400, Some(100)));
    let received = f.meta.wait_for(2, WAIT).await?;
    assert_eq!(
        received[1].header("authorization"),
        Some(bearer(BETA_META_TOKEN).as_str())
    );

    // What Meta would refuse, and numbers the tenant does not own, never reach Meta.
    let delivered = json!({ "messaging_product": "whatsapp", "status": "delivered",
                            "message_id": "wamid.in.1" });
    let not_read = f.send(ALPHA, NUMBER_A, &delivered, &[]).await?;
    assert_eq!((not_read.status, not_read.code()), (400, Some(100)));
    let not_owned = f.send(ALPHA, NUMBER_B, &mark, &[]).await?;
    assert_eq!((not_owned.status, not_owned.code()), (400, Some(100)));
    assert_eq!(f.meta.received().len(), 2);
    // An id wagate does not know may be media of the tenant's numbers: Meta is asked for each
    // (naming it), and says no.
    f.meta.script([
        Scripted::meta_error(400, 100, "Unsupported get request"),
        Scripted::meta_error(400, 100, "Unsupported get request"),
    ]);
    let unknown = f.web.get(&f.url("/v23.0/999"), ALPHA).await?;
    assert_eq!((unknown.status, unknown.code()), (400, Some(100)));
    let asked = f.meta.received();
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(
        asked[2].path,
        format!("/v23.0/999?phone_number_id={NUMBER_A}")
    );
    assert_eq!(
        asked[3].path,
        format!("/v23.0/999?phone_number_id={NUMBER_A2}")
    );

    // No send was decided; each mark Meta answered is counted by its answer.
    let metrics = metrics(&f).await?;
    assert!(
        !metrics.contains("wagate_decisions_total{"),
        "a read mark is no send:\n{metrics}"
    );
    for answer in ["2xx", "4xx"] {
        let count = format!(
            r#"wagate_meta_graph_request_duration_seconds_count{{call="read_mark",answer="{answer}"}} 1"#
        );
        assert!(metrics.contains(&count), "{count} in\n{metrics}");
    }
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_graph_calls_pass_through_for_what_the_tenant_owns_and_are_audited() -> Result<()> {
    let mut f = Fixture::start_logged("drop-in-pass-through", "", &[]).await?;
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "id": NUMBER_A.to_string(), "quality_rating": "YELLOW" }),
    }]);
    let path = format!("/v23.0/{NUMBER_A}?fields=quality_rating");
    let number = f.web.get(&f.url(&path), ALPHA).await?;
    assert_eq!(number.status, 200, "{}", number.text());
    assert_eq!(number.json()["quality_rating"], "YELLOW");
    let received = f.meta.wait_for(1, WAIT).await?;
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("GET", path.as_str()),
        "the path and query as the caller wrote them"
    );
    assert_eq!(
        received[0].header("authorization"),
        Some(bearer(META_TOKEN).as_str())
    );

    // The tenant's business (account 1, its numbers' WABA): a POST with its body, and
    // Meta's refusal relayed.
    f.meta
        .script([Scripted::meta_error(400, 100, "Invalid parameter")]);
    let template = json!({ "override_callback_uri": "https://alpha.example/hook" });
    let created = f
        .web
        .post(&f.url("/v23.0/1/subscribed_apps"), ALPHA, &template, &[])
        .await?;
    assert_eq!((created.status, created.code()), (400, Some(100)));
    let received = f.meta.wait_for(2, WAIT).await?;
    assert_eq!(received[1].method, "POST");
    assert_eq!(received[1].json(), template);
    assert_eq!(received[1].header("content-type"), Some("application/json"));

    // Another tenant's number or business, an id nobody has, a request without a token, a path
    // that is no Graph path: answered here, Meta never asked.
    for path in [
        format!("/v23.0/{NUMBER_B}"),
        format!("/v23.0/{NUMBER_B}?phone_number_id={NUMBER_A}"),
        "/v23.0/2/phone_numbers".to_string(),
    ] {
        let refused = f.web.get(&f.url(&path), ALPHA).await?;
        assert_eq!((refused.status, refused.code()), (400, Some(100)), "{path}");
    }
    let anonymous = f.web.get(&f.url(&format!("/v23.0/{NUMBER_A}")), "").await?;
    assert_eq!(anonymous.status, 401);
    for path in ["/v23.0/1001/../2001", "/wagate/v1/nothing", "/v23.0"] {
        let unknown = f.web.get(&f.url(path), ALPHA).await?;
        assert_eq!(unknown.status, 404, "{path}: {}", unknown.text());
    }
    assert_eq!(f.meta.received().len(), 2);

    let metrics = metrics(&f).await?;
    let count =
        r#"wagate_meta_graph_request_duration_seconds_count{call="pass_through",answer="2xx"} 1"#;
    assert!(metrics.contains(count), "{count} in\n{metrics}");
    f.stop()?;
    let log = f.log()?;
    let audited: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("passed through to Meta"))
        .collect();
    assert_eq!(
        audited.len(),
        2,
        "one audit line per call Meta answered:\n{log}"
    );
    assert!(
        audited[0].contains("alpha") && audited[0].contains(&format!("/v23.0/{NUMBER_A}")),
        "{}",
        audited[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_created_through_the_cloud_api_is_linted_sent_and_known_as_pending() -> Result<()>
{
    // Tenant gamma refuses templates its lint faults; alpha sends them with the findings.
    let gamma = r#"
[[numbers]]
id = 3001
account = 3
portfolio = 3
throughput_mps = 1000

[[tenants]]
name = "gamma"
token = "gamma-token-0123456789"
numbers = [3001]
block_on_template_lint = true
"#;
    let mut f = Fixture::start("drop-in-templates", gamma).await?;
    let ana = person(1);
    f.opt_in(NUMBER_A, std::slice::from_ref(&ana)).await?;
    let create = |name: &str, body: &str| {
        json!({ "name": name, "language": "en_US", "category": "UTILITY",
                "components": [{ "type": "BODY", "text": body,
                                 "example": { "body_text": [["Ana"]] } }] })
    };
    let meta_took = |id: &str| Scripted {
        status: 200,
        body: json!({ "id": id, "status": "PENDING", "category": "UTILITY" }),
    };

    let notice = create("shipping_notice", "Hi {{1}}, your parcel left.");
    f.meta.script([meta_took("594425479261596")]);
    let created = f
        .web
        .post(&f.url("/v23.0/1/message_templates"), ALPHA, &notice, &[])
        .await?;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["id"], "594425479261596", "Meta's answer");
    assert_eq!(created.json()["wagate_lint"], json!([]));
    let received = f.meta.wait_for(1, WAIT).await?;
    assert_eq!(received[0].path, "/v23.0/1/message_templates");
    assert_eq!(
        received[0].json(),
        notice,
        "the request as the caller wrote it"
    );

    // wagate knows it as pending: a send of it is refused as not approved (not as unknown),
    // until Meta's verdict comes.
    let send = template_send(&ana, "shipping_notice", &["Ana"]);
    let early = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(
        early.json()["error"]["wagate_reason"],
        "template_not_approved",
        "{}",
        early.text()
    );
    let approved = account_webhook(
        "message_template_status_update",
        json!({ "event": "APPROVED", "message_template_id": 594425479261596_u64,
                "message_template_name": "shipping_notice",
                "message_template_language": "en_US" }),
    );
    assert_eq!(f.meta_webhook(&approved, None).await?.json()["applied"], 1);
    let sent = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());

    // A template the lint faults (a variable at the body's edge): alpha's goes to Meta with
    // the findings alongside; gamma's is refused here, Meta never asked.
    let faulty = create("code_notice", "{{1}} is your code");
    f.meta.script([meta_took("594425479261597")]);
    let advised = f
        .web
        .post(&f.url("/v23.0/1/message_templates"), ALPHA, &faulty, &[])
        .await?;
    assert_eq!(advised.status, 200, "{}", advised.text());
    assert_eq!(
        advised.json()["wagate_lint"][0]["rule"],
        "variable_at_edge",
        "{}",
        advised.text()
    );
    // Sends accepted above go to the same stand-in as they are dispatched: count only the
    // template creations Meta was asked for.
    let creations = || {
        f.meta
            .received()
            .iter()
            .filter(|r| r.path.ends_with("/message_templates"))
            .count()
    };
    let asked = creations();
    let blocked = f
        .web
        .post(
            &f.url("/v23.0/3/message_templates"),
            "gamma-token-0123456789",
            &faulty,
            &[],
        )
        .await?;
    assert_eq!(blocked.status, 400, "{}", blocked.text());
    assert_eq!(blocked.json()["wagate_lint"][0]["rule"], "variable_at_edge");
    assert_eq!(creations(), asked, "Meta was not asked");

    // Another business's templates, and a malformed request: refused here.
    let foreign = f
        .web
        .post(&f.url("/v23.0/3/message_templates"), ALPHA, &notice, &[])
        .await?;
    assert_eq!((foreign.status, foreign.code()), (400, Some(100)));
    let malformed = f
        .web
        .post(
            &f.url("/v23.0/1/message_templates"),
            ALPHA,
            &json!({ "name": "x", "language": "en_US", "category": "UTILITY" }),
            &[],
        )
        .await?;
    assert_eq!(malformed.status, 400, "{}", malformed.text());
    assert_eq!(creations(), asked);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_answer_to_a_number_read_is_applied_as_metas_word() -> Result<()> {
    let mut f = Fixture::start("drop-in-number-read", "").await?;
    let usage_url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage"));
    let before = f.web.get(&usage_url, ADMIN).await?.json();
    assert_ne!(before["quality"], "YELLOW", "{before}");
    assert_ne!(before["tier"], "TIER_10K", "{before}");

    // The sender reads its number; Meta says YELLOW and TIER_10K (no webhook ever said so).
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "id": NUMBER_A.to_string(), "quality_rating": "YELLOW",
                      "messaging_limit_tier": "TIER_10K", "throughput": { "level": "STANDARD" },
                      "display_phone_number": "+1 555-000-1001" }),
    }]);
    let read = f
        .web
        .get(
            &f.url(&format!(
                "/v23.0/{NUMBER_A}?fields=quality_rating,messaging_limit_tier,throughput"
            )),
            ALPHA,
        )
        .await?;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(
        read.json()["quality_rating"],
        "YELLOW",
        "relayed as it came"
    );
    let after = f.web.get(&usage_url, ADMIN).await?.json();
    assert_eq!(after["quality"], "YELLOW", "{after}");
    assert_eq!(after["tier"], "TIER_10K", "{after}");

    // A business's number list: only the tenant's own numbers are taken from it.
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "data": [
            { "id": NUMBER_A2.to_string(), "quality_rating": "RED",
              "display_phone_number": "+1 555-000-1002", "name_status": "PENDING_REVIEW" },
            { "id": NUMBER_B.to_string(), "quality_rating": "RED" } ] }),
    }]);
    let listed = f.web.get(&f.url("/v23.0/1/phone_numbers"), ALPHA).await?;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let quality_of = |number: u64| {
        let url = f.url(&format!("/wagate/admin/numbers/{number}/usage"));
        let web = &f.web;
        async move { Ok::<_, anyhow::Error>(web.get(&url, ADMIN).await?.json()["quality"].clone()) }
    };
    assert_eq!(quality_of(NUMBER_A2).await?, "RED");
    assert_ne!(
        quality_of(NUMBER_B).await?,
        "RED",
        "beta's number is not alpha's to change"
    );

    facts_counted(&f, &["quality", "tier", "display", "name_status"]).await?;

    // The display number Meta gave (the config had none) is how its number webhooks name it,
    // across a restart.
    f.stop()?;
    f.restart()?;
    let unflagged = account_webhook(
        "phone_number_quality_update",
        json!({ "display_phone_number": "15550001002", "event": "UNFLAGGED",
                "current_limit": "TIER_1K" }),
    );
    assert_eq!(f.meta_webhook(&unflagged, None).await?.json()["applied"], 1);
    let url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A2}/usage"));
    let usage = f.web.get(&url, ADMIN).await?.json();
    assert_eq!(usage["quality"], "GREEN", "{usage}");
    assert_eq!(usage["name_status"], "pending", "{usage}");
    // Meta's decision on the name, by the same display number.
    let named = account_webhook(
        "phone_number_name_update",
        json!({ "display_phone_number": "15550001002", "decision": "APPROVED",
                "requested_verified_name": "Alpha Shop" }),
    );
    assert_eq!(f.meta_webhook(&named, None).await?.json()["applied"], 1);
    assert_eq!(
        f.web.get(&url, ADMIN).await?.json()["name_status"],
        "approved"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_template_list_and_deletion_bring_wagate_in_line() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("drop-in-template-list", "", 1).await?;
    f.approved_template("promo", "marketing", "Sale for {{1}}")
        .await?;
    let send = |name: &str| template_send(&ana, name, &["Ana"]);
    let welcome = send("welcome_back");
    let unknown = f.send(ALPHA, NUMBER_A, &welcome, &[]).await?;
    assert_eq!(
        unknown.json()["error"]["wagate_reason"],
        "template_not_found",
        "{}",
        unknown.text()
    );

    // Meta's list: promo paused on Meta's side (no webhook said so), and a template wagate was
    // never told of, approved.
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "data": [
            { "id": "11", "name": "promo", "language": "en_US", "status": "PAUSED",
              "category": "MARKETING",
              "components": [{ "type": "BODY", "text": "Sale for {{1}}" }] },
            { "id": "12", "name": "welcome_back", "language": "en_US", "status": "APPROVED",
              "category": "UTILITY",
              "components": [{ "type": "BODY", "text": "Welcome back {{1}}" }] } ] }),
    }]);
    let listed = f
        .web
        .get(&f.url("/v23.0/1/message_templates?limit=100"), ALPHA)
        .await?;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(
        listed.json()["data"][0]["name"],
        "promo",
        "relayed as it came"
    );
    let paused = f.send(ALPHA, NUMBER_A, &send("promo"), &[]).await?;
    assert_eq!(paused.code(), Some(132_015), "{}", paused.text());
    let known = f.send(ALPHA, NUMBER_A, &welcome, &[]).await?;
    assert_eq!(known.status, 200, "{}", known.text());

    // Meta deletes it: so does wagate.
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "success": true }),
    }]);
    let deleted = f
        .web
        .request(
            hyper::Method::DELETE,
            &f.url("/v23.0/1/message_templates?name=welcome_back"),
            &[("authorization", &format!("Bearer {ALPHA}"))],
            bytes::Bytes::new(),
        )
        .await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let gone = f.send(ALPHA, NUMBER_A, &welcome, &[]).await?;
    assert_eq!(gone.code(), Some(132_001), "{}", gone.text());

    facts_counted(&f, &["template_status", "template_known"]).await?;
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_from_meta_brings_every_business_in_line_on_demand_and_at_start() -> Result<()> {
    let mut f = Fixture::start("drop-in-sync", "").await?;
    let ana = person(1);
    f.opt_in(NUMBER_A, std::slice::from_ref(&ana)).await?;
    let answer = |body: Value| Scripted { status: 200, body };
    // In the order wagate asks: alpha's business 1 (templates in two pages, numbers), then
    // beta's 2.
    let next = format!(
        "{}/v23.0/1/message_templates?limit=1000&after=QVFI",
        f.meta.url()
    );
    f.meta.script([
        answer(json!({ "data": [
            { "name": "welcome_back", "language": "en_US", "status": "APPROVED",
              "category": "UTILITY",
              "components": [{ "type": "BODY", "text": "Welcome back {{1}}" }] } ],
            "paging": { "cursors": { "after": "QVFI" }, "next": next } })),
        answer(json!({ "data": [
            { "name": "see_you", "language": "en_US", "status": "APPROVED",
              "category": "UTILITY",
              "components": [{ "type": "BODY", "text": "See you {{1}}" }] } ] })),
        answer(json!({ "data": [{ "id": NUMBER_A.to_string(), "quality_rating": "YELLOW" }] })),
        answer(json!({ "data": [] })),
        answer(json!({ "data": [] })),
    ]);
    let synced = f.admin("/wagate/admin/sync", json!({})).await?;
    assert_eq!(synced.status, 200, "{}", synced.text());
    assert_eq!(synced.json(), json!({ "asked": 5, "answered": 5 }));
    let asked: Vec<(String, Option<String>)> = f
        .meta
        .received()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.header("authorization").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            (
                "/v23.0/1/message_templates?limit=1000".into(),
                Some(bearer(META_TOKEN))
            ),
            (
                "/v23.0/1/message_templates?limit=1000&after=QVFI".into(),
                Some(bearer(META_TOKEN))
            ),
            (
                "/v23.0/1/phone_numbers?limit=1000".into(),
                Some(bearer(META_TOKEN))
            ),
            (
                "/v23.0/2/message_templates?limit=1000".into(),
                Some(bearer(BETA_META_TOKEN))
            ),
            (
                "/v23.0/2/phone_numbers?limit=1000".into(),
                Some(bearer(BETA_META_TOKEN))
            ),
        ]
    );
    for name in ["welcome_back", "see_you"] {
        let send = template_send(&ana, name, &["Ana"]);
        let sent = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
        assert_eq!(sent.status, 200, "{name}, never told of: {}", sent.text());
    }
    let usage = f
        .web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage")),
            ADMIN,
        )
        .await?
        .json();
    assert_eq!(usage["quality"], "YELLOW", "{usage}");
    f.stop()?;

    // With an interval configured, a sync runs at start.
    let mut f = Fixture::start_with(
        "drop-in-sync-at-start",
        "",
        &["--meta.sync_interval_secs", "3600"],
    )
    .await?;
    let asked = f.meta.wait_for(4, WAIT).await?;
    assert!(asked.iter().take(4).all(|r| r.method == "GET"), "{asked:?}");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_meta_changes_on_its_side_without_a_webhook_a_sync_brings_in() -> Result<()> {
    let (_mock, base, mut f) = with_plain_mock_meta("drop-in-mock-sync").await?;
    let ana = person(1);
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    // Meta pauses the template and rates the number YELLOW, and says nothing.
    for (path, body) in [
        (
            "/mock/template_status",
            json!({ "name": "order_update", "language": "en_US", "status": "PAUSED" }),
        ),
        (
            "/mock/number_quality",
            json!({ "phone_number_id": NUMBER_A.to_string(), "quality_rating": "YELLOW" }),
        ),
    ] {
        let changed = f.web.post(&format!("{base}{path}"), "", &body, &[]).await?;
        assert_eq!(changed.status, 200, "{path}: {}", changed.text());
    }
    let usage_url = f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage"));
    assert_ne!(
        f.web.get(&usage_url, ADMIN).await?.json()["quality"],
        "YELLOW"
    );

    let synced = f.admin("/wagate/admin/sync", json!({})).await?;
    assert_eq!(
        synced.json()["answered"],
        synced.json()["asked"],
        "{}",
        synced.text()
    );
    let refused = f.send_update(&ana).await?;
    assert_eq!(
        refused.code(),
        Some(132_015),
        "refused before Meta: {}",
        refused.text()
    );
    assert_eq!(
        f.web.get(&usage_url, ADMIN).await?.json()["quality"],
        "YELLOW"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_the_business_blocks_through_meta_gets_nothing_until_unblocked() -> Result<()> {
    let (mut f, ana) = Fixture::ready_for("drop-in-block", "", 1).await?;
    let bo = person(2);
    f.opt_in(NUMBER_A, std::slice::from_ref(&bo)).await?;
    let block_url = f.url(&format!("/v23.0/{NUMBER_A}/block_users"));
    let auth = bearer(ALPHA);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let asking = json!({ "messaging_product": "whatsapp", "block_users": [{ "user": ana }] });
    f.meta.script([Scripted {
        status: 200,
        body: json!({ "messaging_product": "whatsapp", "block_users": {
            "added_users": [{ "input": format!("+{ana}"), "wa_id": ana }] } }),
    }]);
    let blocked = f
        .web
        .request(
            hyper::Method::POST,
            &block_url,
            &headers,
            asking.to_string(),
        )
        .await?;
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert_eq!(f.contact(NUMBER_A, &ana).await?["blocked"], true);

    // Refused here with Meta's 130403, across a restart; Meta never asked.
    f.stop()?;
    f.restart()?;
    let refused = f.send_update(&ana).await?;
    assert_eq!(refused.code(), Some(130_403), "{}", refused.text());
    assert_eq!(
        refused.json()["error"]["wagate_reason"],
        "blocked_by_business"
    );
    assert!(
        !f.meta
            .received()
            .iter()
            .any(|r| r.path.ends_with("/messages")),
        "{:?}",
        f.meta.received()
    );

    f.meta.script([Scripted {
        status: 200,
        body: json!({ "messaging_product": "whatsapp", "block_users": {
            "removed_users": [{ "input": format!("+{ana}"), "wa_id": ana }] } }),
    }]);
    // The restarted server listens on a port of its own.
    let block_url = f.url(&format!("/v23.0/{NUMBER_A}/block_users"));
    let unblocked = f
        .web
        .request(
            hyper::Method::DELETE,
            &block_url,
            &headers,
            asking.to_string(),
        )
        .await?;
    assert_eq!(unblocked.status, 200, "{}", unblocked.text());
    let sent = f.send_update(&ana).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    f.meta.wait_for(3, WAIT).await?;

    // A block wagate did not know: Meta's 130403 on a send is Meta's word, applied at once.
    f.meta.script([Scripted::meta_error(
        400,
        130_403,
        "Business has blocked this user",
    )]);
    let first = f.send_update(&bo).await?;
    // The number's throughput paces its sends on wagate's clock (manual here).
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 1 }))
        .await?;
    f.wait_message(&first.message_id(), WAIT, |v| v["status"] == "failed")
        .await?;
    let again = f.send_update(&bo).await?;
    assert_eq!(again.code(), Some(130_403), "{}", again.text());
    // Meta never tells of it by webhook: wagate tells the tenant, as Meta tells a failure.
    let status = told_status(&f, &first.message_id(), "failed").await?;
    assert_eq!(
        (
            status["status"].clone(),
            status["errors"][0]["code"].clone(),
            status["wagate_reason"].clone()
        ),
        (json!("failed"), json!(130_403), json!("failed_at_dispatch")),
        "{status}"
    );
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_is_edited_read_and_deleted_by_metas_id() -> Result<()> {
    let mut f = Fixture::start("drop-in-template-by-id", "").await?;
    let ana = person(1);
    f.opt_in(NUMBER_A, std::slice::from_ref(&ana)).await?;
    let meta_says = |body: Value| Scripted { status: 200, body };
    f.meta.script([meta_says(
        json!({ "id": "778899", "status": "PENDING", "category": "UTILITY" }),
    )]);
    let created = f
        .web
        .post(
            &f.url("/v23.0/1/message_templates"),
            ALPHA,
            &json!({ "name": "pickup_ready", "language": "en_US", "category": "UTILITY",
                     "components": [{ "type": "BODY", "text": "Hi {{1}}, your parcel is ready.",
                                      "example": { "body_text": [["Ana"]] } }] }),
            &[],
        )
        .await?;
    assert_eq!(created.status, 200, "{}", created.text());
    let approve = || {
        account_webhook(
            "message_template_status_update",
            json!({ "event": "APPROVED", "message_template_id": 778899_u64,
                    "message_template_name": "pickup_ready",
                    "message_template_language": "en_US" }),
        )
    };
    assert_eq!(f.meta_webhook(&approve(), None).await?.json()["applied"], 1);
    let send = template_send(&ana, "pickup_ready", &["Ana"]);
    let sent = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    f.meta.wait_for(2, WAIT).await?;

    // An edit by Meta's id: linted, sent to Meta, and the template is back in review here.
    let by_id = f.url("/v23.0/778899");
    f.meta.script([meta_says(json!({ "success": true }))]);
    let edit = json!({ "components": [{ "type": "BODY", "text": "Hi {{1}}, your parcel waits at the desk.",
                                        "example": { "body_text": [["Ana"]] } }] });
    let edited = f.web.post(&by_id, ALPHA, &edit, &[]).await?;
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(edited.json()["success"], true);
    assert_eq!(edited.json()["wagate_lint"], json!([]));
    let asked = f.meta.wait_for(3, WAIT).await?;
    assert_eq!(
        (asked[2].method.as_str(), asked[2].path.as_str()),
        ("POST", "/v23.0/778899")
    );
    let early = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(
        early.json()["error"]["wagate_reason"],
        "template_not_approved",
        "{}",
        early.text()
    );
    // In review, Meta takes no edit: refused here, Meta not asked.
    let refused = f.web.post(&by_id, ALPHA, &edit, &[]).await?;
    assert_eq!(
        refused.json()["error"]["wagate_reason"],
        "template_not_editable",
        "{}",
        refused.text()
    );
    // Approved again: its category stays.
    assert_eq!(f.meta_webhook(&approve(), None).await?.json()["applied"], 1);
    let recategorised = f
        .web
        .post(&by_id, ALPHA, &json!({ "category": "MARKETING" }), &[])
        .await?;
    assert_eq!(
        recategorised.json()["error"]["wagate_reason"],
        "template_not_editable"
    );
    // Approved again, but edited (while approved) less than a day ago: Meta takes one a day,
    // and a restart does not forget the edit.
    f.stop()?;
    f.restart()?;
    let by_id = f.url("/v23.0/778899");
    let again = f.web.post(&by_id, ALPHA, &edit, &[]).await?;
    assert_eq!(
        again.json()["error"]["wagate_reason"],
        "template_edit_limit",
        "{}",
        again.text()
    );
    assert_eq!(f.meta.received().len(), 3, "Meta was not asked");

    // Another tenant cannot reach it (a template is no media: Meta is not asked); a read is
    // Meta's word on its status.
    let foreign = f.web.get(&by_id, BETA).await?;
    assert_eq!(foreign.code(), Some(100), "{}", foreign.text());
    f.meta
        .script([meta_says(json!({ "id": "778899", "status": "PAUSED" }))]);
    let read = f.web.get(&format!("{by_id}?fields=status"), ALPHA).await?;
    assert_eq!(read.json()["status"], "PAUSED", "{}", read.text());
    let paused = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(paused.code(), Some(132_015), "{}", paused.text());

    f.meta.script([meta_says(json!({ "success": true }))]);
    let deleted = f
        .web
        .request(
            hyper::Method::DELETE,
            &by_id,
            &[("authorization", &bearer(ALPHA))],
            Vec::new(),
        )
        .await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let gone = f.send(ALPHA, NUMBER_A, &send, &[]).await?;
    assert_eq!(gone.code(), Some(132_001), "{}", gone.text());

    // A template typed in through the admin API learns Meta's id from Meta's webhook.
    f.approved_template("order_update", "utility", ORDER_UPDATE)
        .await?;
    let flagged = account_webhook(
        "message_template_status_update",
        json!({ "event": "FLAGGED", "message_template_id": 5555_u64,
                "message_template_name": "order_update", "message_template_language": "en_US" }),
    );
    assert_eq!(f.meta_webhook(&flagged, None).await?.json()["applied"], 1);
    f.meta
        .script([meta_says(json!({ "id": "5555", "status": "APPROVED" }))]);
    let before = f.meta.received().len();
    let read = f.web.get(&f.url("/v23.0/5555"), ALPHA).await?;
    assert_eq!(read.json()["status"], "APPROVED", "{}", read.text());
    let asked = f.meta.received();
    assert_eq!(
        asked.len(),
        before + 1,
        "one call, no media probe: {asked:?}"
    );
    assert_eq!(asked[before].path, "/v23.0/5555");
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_registration_call_in_72_hours_is_refused_before_meta() -> Result<()> {
    let mut f = Fixture::start("drop-in-registration", "").await?;
    let call = |f: &Fixture, number: u64, edge: &str| {
        let (web, url) = (f.web.clone(), f.url(&format!("/v23.0/{number}/{edge}")));
        async move {
            web.post(
                &url,
                ALPHA,
                &json!({ "messaging_product": "whatsapp", "pin": "123456" }),
                &[],
            )
            .await
        }
    };
    for edge in ["register", "deregister"].iter().cycle().take(10) {
        let taken = call(&f, NUMBER_A, edge).await?;
        assert_eq!(taken.status, 200, "{}", taken.text());
    }
    for edge in ["register", "deregister"] {
        let refused = call(&f, NUMBER_A, edge).await?;
        assert_eq!(refused.code(), Some(133_016), "{}", refused.text());
    }
    assert_eq!(
        f.meta.received().len(),
        10,
        "the eleventh never reached Meta"
    );
    // Another number has its own count; Meta's own 133016 is its word that the window is full.
    f.meta
        .script([Scripted::meta_error(400, 133_016, "rate limit exceeded")]);
    assert_eq!(call(&f, NUMBER_A2, "register").await?.code(), Some(133_016));
    assert_eq!(call(&f, NUMBER_A2, "register").await?.code(), Some(133_016));
    assert_eq!(f.meta.received().len(), 11);
    // Across a restart the counts hold: still refused, still before Meta.
    f.stop()?;
    f.restart()?;
    assert_eq!(call(&f, NUMBER_A, "register").await?.code(), Some(133_016));
    assert_eq!(call(&f, NUMBER_A2, "register").await?.code(), Some(133_016));
    assert_eq!(f.meta.received().len(), 11, "nothing more reached Meta");
    // 72 h on, the calls may go again.
    f.admin("/wagate/admin/clock", json!({ "advance_secs": 72 * 3_600 }))
        .await?;
    assert_eq!(call(&f, NUMBER_A, "register").await?.status, 200);
    assert_eq!(call(&f, NUMBER_A2, "register").await?.status, 200);
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_calls_reach_meta_s_registration_through_wagate() -> Result<()> {
    let (_mock, _base, mut f) = with_plain_mock_meta("drop-in-mock-registration").await?;
    for (edge, body) in [
        (
            "request_code",
            json!({ "code_method": "SMS", "language": "en_US" }),
        ),
        ("verify_code", json!({ "code": "123456" })),
        (
            "register",
            json!({ "messaging_product": "whatsapp", "pin": "123456" }),
        ),
        ("deregister", json!({})),
    ] {
        let url = f.url(&format!("/v23.0/{NUMBER_A}/{edge}"));
        let answer = f.web.post(&url, ALPHA, &body, &[]).await?;
        assert_eq!(answer.status, 200, "{edge}: {}", answer.text());
        assert_eq!(answer.json()["success"], true, "{edge}");
    }
    f.stop()
}
