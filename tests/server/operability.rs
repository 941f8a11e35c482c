//! What an operator sees: the structured log, /metrics and the Grafana dashboard over it.

use crate::support::fixture::*;
use crate::support::meta_stub::Scripted;
use anyhow::Result;
use serde_json::Value;

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
    // An event from Meta wagate cannot apply: logged inside the webhook request's span.
    let unknown = account_webhook(
        "message_template_status_update",
        serde_json::json!({ "event": "SOMETHING_NEW", "message_template_id": 1,
                "message_template_name": "order_update", "message_template_language": "en_US" }),
    );
    assert_eq!(f.meta_webhook(&unknown, None).await?.json()["ignored"], 1);
    // A call passed through to Meta: its audit line is in a span naming tenant and number.
    let passed = f
        .web
        .get(&f.url(&format!("/v23.0/{NUMBER_A}")), ALPHA)
        .await?;
    assert_eq!(passed.status, 200, "{}", passed.text());
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
    let not_applied = lines
        .iter()
        .find(|line| line["fields"]["message"] == "a Meta webhook event was not applied")
        .ok_or_else(|| anyhow::anyhow!("the ignored event is not logged: {log}"))?;
    assert!(
        not_applied["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|span| span["name"] == "request" && span["endpoint"] == "/webhooks/meta"),
        "not in the webhook request's span: {not_applied}"
    );
    let audited = lines
        .iter()
        .find(|line| line["fields"]["message"] == "passed through to Meta")
        .ok_or_else(|| anyhow::anyhow!("the pass-through is not audited: {log}"))?;
    assert!(
        audited["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|span| {
                span["name"] == "request" && span["tenant"] == "alpha" && span["number"] == NUMBER_A
            }),
        "not in a span naming the tenant and the number: {audited}"
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

/// Every sample name `/metrics` shows, and the names its declared families give samples.
fn exported_names(metrics: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The value of the sample `name{labels}` exactly as written (labels in their order).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_latency_per_endpoint_decisions_by_tenant_and_usage_per_number() -> Result<()>
{
    let mut f = Fixture::start("ops-metrics", "").await?;
    let (ana, bo) = (person(1), person(2));
    f.ready_to_send(std::slice::from_ref(&ana)).await?;
    let sent = f.send_update(&ana).await?.message_id();
    f.wait_message(&sent, WAIT, |v| v["status"] == "sent")
        .await?;
    // Bo never opted in: refused by a rule, for a reason the answer names.
    let refused = f.send_update(&bo).await?;
    let reason = refused.json()["error"]["wagate_reason"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("not refused: {}", refused.text()))?;

    let metrics = f.web.get(&f.url("/metrics"), ADMIN).await?.text();
    let at = |series: &str| {
        sample(&metrics, series).ok_or_else(|| anyhow::anyhow!("no {series} in {metrics}"))
    };
    assert!(
        !metrics.contains("..\n"),
        "a help text ends in two periods: {metrics}"
    );
    let send = r#"endpoint="/{version}/{number}/messages""#;
    assert!(
        at(&format!(
            "wagate_http_request_duration_seconds_count{{{send}}}"
        ))? >= 2.0
    );
    assert!(
        metrics.contains(&format!(
            "wagate_http_request_duration_seconds_bucket{{le=\"+Inf\",{send}}}"
        )),
        "{metrics}"
    );
    assert!(
        at(
            r#"wagate_http_request_duration_seconds_count{endpoint="/wagate/admin/templates/status"}"#
        )? >= 2.0
    );
    let decided = |outcome: &str| {
        at(&format!(
            r#"wagate_decisions_total{{tenant="alpha",number="{NUMBER_A}",outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(decided("accepted")?, 1.0);
    assert_eq!(decided("refused")?, 1.0);
    assert_eq!(
        at(&format!(r#"wagate_refusals_total{{reason="{reason}"}}"#))?,
        1.0
    );
    assert_eq!(
        at(r#"wagate_upstream_request_duration_seconds_count{outcome="sent"}"#)?,
        1.0
    );
    assert!(at("wagate_group_commit_duration_seconds_count")? >= 1.0);
    assert!(at("wagate_group_commit_records_sum")? >= 1.0);
    assert_eq!(at("wagate_message_time_queued_seconds_count")?, 1.0);
    assert_eq!(
        at(&format!(
            r#"wagate_usage_unique_recipients_24h{{number="{NUMBER_A}"}}"#
        ))?,
        1.0
    );
    assert!(at(&format!(r#"wagate_usage_limit{{number="{NUMBER_A}"}}"#))? >= 250.0);

    // The Grafana dashboard draws only what the server exports.
    let exported = exported_names(&metrics);
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana/wagate.json"
    ))?)?;
    let mut checked = 0;
    for target in dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
    {
        let expr = target["expr"].as_str().unwrap_or_default();
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("wagate_"));
        for name in names {
            assert!(
                exported.contains(name),
                "the dashboard's `{expr}` names {name}, which /metrics does not export"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} metric names in the dashboard"
    );
    f.stop()
}
