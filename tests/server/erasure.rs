//! The right to erasure, end to end: a person's records, history and messages leave every
//! column family of the data directory (scanned byte by byte after the server stops), a salted
//! hash stays on the suppression list so that a re-import cannot opt them back in, and the
//! erasure is in the audit log; another person's data is untouched.

use crate::support::fixture::*;
use crate::WAIT;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use wagate_store::{Family, RocksStore, Store};

async fn audit(f: &Fixture) -> Result<Vec<Value>> {
    let log = f
        .web
        .get(&f.url("/wagate/admin/audit"), ADMIN)
        .await?
        .json();
    Ok(log["data"].as_array().cloned().unwrap_or_default())
}

/// The families of the data directory that hold `digits` (as text or as a big-endian u64).
fn families_naming(store: &RocksStore, digits: &str) -> Result<Vec<&'static str>> {
    let text = digits.as_bytes().to_vec();
    let binary = digits.parse::<u64>()?.to_be_bytes().to_vec();
    let mut found = Vec::new();
    for family in Family::ALL {
        let mut named = false;
        store.scan(family, &[], &[0xff; 64], &mut |key, value| {
            named = [key, value].iter().any(|bytes| {
                [&text, &binary]
                    .iter()
                    .any(|needle| bytes.windows(needle.len()).any(|w| w == needle.as_slice()))
            });
            !named
        })?;
        if named {
            found.push(family.name());
        }
    }
    Ok(found)
}

fn consent(person: &str, extra: Value) -> Value {
    let mut body = json!({ "phone_number_id": NUMBER_A2.to_string(), "to": person,
                           "change": "opt_in", "source": "web_form",
                           "evidence": { "form_url": "https://shop.example/join" } });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_leaves_every_family_and_a_re_import_cannot_bring_them_back() -> Result<()>
{
    let mut f = Fixture::start("erasure", "").await?;
    let (ana, ben) = (person(1), person(2));
    let digits = |p: &str| p.trim_start_matches('+').to_string();
    f.ready_to_send(&[ana.clone(), ben.clone()]).await?;
    for who in [&ana, &ben] {
        let proof = f
            .admin("/wagate/admin/contacts/consent", consent(who, json!({})))
            .await?;
        assert_eq!(proof.status, 200, "{}", proof.text());
        let sent = f.send_update(who).await?;
        assert_eq!(sent.status, 200, "{}", sent.text());
        // Sends go out on the manual clock's time: it moves for each.
        advance(&f, 1).await?;
        f.wait_message(&sent.message_id(), WAIT, |v| v["status"] == "sent")
            .await?;
    }

    // The tenant's callback is down: what it is told about them waits in the forward queue
    // (the news of the queued sends below, kept in wagate's own form, and their messages).
    let failing = || crate::support::meta_stub::Scripted {
        status: 500,
        body: json!({}),
    };
    f.sink.script((0..100_000).map(|_| failing()));

    // The number is restricted: a template to each of them waits in the queue.
    let restriction = restriction_webhook();
    assert_eq!(
        f.meta_webhook(&restriction, None).await?.json()["applied"],
        1
    );
    let mut queued = Vec::new();
    for who in [&ana, &ben] {
        let answer = f.send_update(who).await?;
        assert_eq!(
            answer.json()["messages"][0]["message_status"],
            "queued",
            "{}",
            answer.text()
        );
        queued.push(answer.message_id());
    }

    // Then they write (a webhook for the tenant, a window with the number; Meta names them
    // by their digits alone).
    for (who, wamid) in [(&ana, "wamid.in.1"), (&ben, "wamid.in.2")] {
        let inbound = f
            .meta_webhook(
                &inbound_webhook(NUMBER_A, wamid, &digits(who), "hello"),
                None,
            )
            .await?;
        assert_eq!(inbound.json()["applied"], 1, "{}", inbound.text());
    }

    let url = f.url(&format!(
        "/wagate/admin/contacts/{NUMBER_A}/{}?by=ticket-42",
        digits(&ana)
    ));
    let auth = format!("Bearer {ADMIN}");
    let erased = f
        .web
        .request(hyper::Method::DELETE, &url, &[("authorization", &auth)], "")
        .await?;
    assert_eq!(erased.status, 200, "{}", erased.text());
    let erasure = &erased.json()["erasure"];
    assert!(erasure["history_events"].as_u64() >= Some(2), "{erasure}");
    assert_eq!(erasure["messages"], 1, "{erasure}");
    assert_eq!(erasure["queued"], 1, "{erasure}");
    // The news of the queued send and the message they wrote, not yet told the tenant.
    assert_eq!(erasure["forwards"], 2, "{erasure}");
    f.sink.clear_script();
    let gone = f.message(ADMIN, &queued[0]).await?;
    assert_eq!(gone.json()["error"]["wagate_reason"], "unknown_object");
    // The template counted toward the 24 h limit: Meta still counts it, so the count stays.
    assert_eq!(erasure["finished"], false, "{erasure}");
    assert!(erasure["counts_kept_until"].as_u64() > Some(START_UNIX));

    // Nothing of their consent is left: a template is refused before Meta.
    let contact = f.contact(NUMBER_A2, &ana).await?;
    assert_eq!(contact["opted_in"], false, "{contact}");
    let refused = f.send_update(&ana).await?;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(
        refused.json()["error"]["wagate_reason"],
        "no_opt_in",
        "{}",
        refused.text()
    );
    // A re-import (or an opt-in without proof that it is fresh) is refused as erased.
    for body in [
        consent(&ana, json!({})),
        consent(&ana, json!({ "after_erasure": true, "evidence": null })),
    ] {
        let again = f.admin("/wagate/admin/contacts/consent", body).await?;
        assert_eq!(again.status, 400, "{}", again.text());
        assert_eq!(again.json()["error"]["wagate_reason"], "erased");
    }
    assert_eq!(f.contact(NUMBER_A, &ana).await?["opted_in"], false);

    let log = audit(&f).await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0]["action"].clone(), log[0]["by"].clone()),
        (json!("erase"), json!("ticket-42"))
    );
    assert_eq!(log[0]["person"], erasure["suppressed_as"]);
    assert!(!log[0].to_string().contains(&digits(&ana)));

    // A day on, what only counted toward Meta's limit goes too.
    advance(&f, 86_401).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !audit(&f)
        .await?
        .iter()
        .any(|e| e["action"] == "erasure_finished")
    {
        if tokio::time::Instant::now() > deadline {
            bail!("the erasure did not finish: {:?}", audit(&f).await?);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The restriction is over: the other person's queued send goes, the erased one's never.
    f.wait_message(&queued[1], WAIT, |v| v["status"] == "sent")
        .await?;
    assert_eq!(
        recipients_at_meta(&f, 3).await?,
        [ana.clone(), ben.clone(), ben.clone()]
    );
    f.stop()?;
    {
        let store = RocksStore::open(&f.dir.join("data"))?;
        assert_eq!(
            families_naming(&store, &digits(&ana))?,
            Vec::<&str>::new(),
            "the erased person is nowhere"
        );
        let kept = families_naming(&store, &digits(&ben))?;
        for family in ["contacts", "messages", "upstream_ids", "consent_history"] {
            assert!(kept.contains(&family), "{family} of the other: {kept:?}");
        }
    }

    // The list outlives a restart; a fresh, evidenced opt-in takes them back.
    f.restart()?;
    advance(&f, 86_500).await?;
    let again = f
        .admin("/wagate/admin/contacts/consent", consent(&ana, json!({})))
        .await?;
    assert_eq!(again.json()["error"]["wagate_reason"], "erased");
    let fresh = f
        .admin(
            "/wagate/admin/contacts/consent",
            consent(&ana, json!({ "after_erasure": true })),
        )
        .await?;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    assert_eq!(f.contact(NUMBER_A, &ana).await?["opted_in"], true);
    let plain = f
        .admin("/wagate/admin/contacts/consent", consent(&ana, json!({})))
        .await?;
    assert_eq!(plain.status, 200, "off the list: {}", plain.text());
    f.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_of_a_number_wagate_does_not_know_or_a_bad_person_changes_nothing() -> Result<()>
{
    let mut f = Fixture::start("erasure-refused", "").await?;
    let auth = format!("Bearer {ADMIN}");
    for (path, status) in [
        ("/wagate/admin/contacts/777/16505550001".to_string(), 400),
        (format!("/wagate/admin/contacts/{NUMBER_A}/12"), 400),
        (
            format!("/wagate/admin/contacts/{NUMBER_A}/16505550001?by="),
            400,
        ),
        (
            format!("/wagate/admin/contacts/{NUMBER_A}/16505550001?who=me"),
            400,
        ),
    ] {
        let answer = f
            .web
            .request(
                hyper::Method::DELETE,
                &f.url(&path),
                &[("authorization", &auth)],
                "",
            )
            .await?;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert!(answer.json()["error"]["code"].is_u64(), "{}", answer.text());
    }
    let a_tenant = f
        .web
        .request(
            hyper::Method::DELETE,
            &f.url(&format!("/wagate/admin/contacts/{NUMBER_A}/16505550001")),
            &[("authorization", &format!("Bearer {ALPHA}"))],
            "",
        )
        .await?;
    assert_eq!(a_tenant.status, 403, "{}", a_tenant.text());
    assert_eq!(audit(&f).await?, Vec::<Value>::new());
    f.stop()
}
