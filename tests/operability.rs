//! What an operator sees: the server's structured log.

use anyhow::Result;
use serde_json::Value;
use wagate_tests::fixture::*;
use wagate_tests::meta_stub::Scripted;

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_message_meta_refused_and_say_nothing_per_accepted_send() -> Result<()> {
    let mut f = Fixture::start_logged("ops-json-log", "", &["--log-format", "json"]).await?;
    let (ana, bo) = (person(1), person(2));
    f.ready_to_send(&[ana.clone(), bo.clone()]).await?;
    let sent = f.send_update(&ana).await?.message_id();
    f.wait_message(&sent, WAIT, |v| v["status"] == "sent")
        .await?;
    // Meta refuses the next one for good.
    f.meta
        .script([Scripted::meta_error(400, 131_026, "Message undeliverable")]);
    let refused = f.send_update(&bo).await?.message_id();
    // The number's next send slot, on the manual clock.
    f.admin(
        "/wagate/admin/clock",
        serde_json::json!({ "advance_secs": 1 }),
    )
    .await?;
    f.wait_message(&refused, WAIT, |v| v["status"] == "failed")
        .await?;
    f.stop()?;

    let log = f.log()?;
    let lines: Vec<Value> = log
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("a log line is not JSON ({e}): {log}"))?;
    let warning = lines.iter().find(|line| {
        line["level"] == "WARN" && line["fields"]["message_id"].as_str() == Some(refused.as_str())
    });
    let warning = warning.ok_or_else(|| anyhow::anyhow!("no warning names {refused}: {log}"))?;
    assert!(
        warning["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("131026")),
        "{warning}"
    );
    assert!(
        !log.contains(sent.as_str()),
        "a line about the accepted, sent message: {log}"
    );
    assert!(
        lines.iter().any(|line| line["level"] == "INFO"),
        "the start and the stop are logged: {log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_name_their_values_as_documented_not_as_the_code_spells_them() -> Result<()> {
    let mut f = Fixture::start("ops-named-values", "").await?;
    // A template the lint finds fault with: a variable at its very start, a plain-HTTP link.
    let created = f
        .admin(
            "/wagate/admin/templates",
            serde_json::json!({ "account": 1, "name": "promo", "language": "en_US",
                    "category": "marketing", "body": "{{1}} see http://example.com now" }),
        )
        .await?;
    let rules: Vec<String> = created.json()["lint"]
        .as_array()
        .map(|findings| {
            findings
                .iter()
                .filter_map(|f| f["rule"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        rules.contains(&"variable_at_edge".to_string()),
        "{}",
        created.text()
    );
    assert!(
        rules.contains(&"insecure_link".to_string()),
        "{}",
        created.text()
    );

    let usage = f
        .web
        .get(
            &f.url(&format!("/wagate/admin/numbers/{NUMBER_A}/usage")),
            ADMIN,
        )
        .await?;
    let quality = usage.json()["quality"].clone();
    assert!(
        ["GREEN", "YELLOW", "RED", "UNKNOWN"].contains(&quality.as_str().unwrap_or("")),
        "{}",
        usage.text()
    );

    let ana = person(1);
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    let id = f.send_update(&ana).await?.message_id();
    let sent = f.wait_message(&id, WAIT, |v| v["status"] == "sent").await?;
    assert_eq!(sent["delivery"], "none", "{sent}");
    assert!(sent["upstream_id"].is_string(), "{sent}");
    assert!(sent.get("error").is_none(), "{sent}");
    f.stop()
}
