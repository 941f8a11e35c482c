//! Groups, as far as they go: mock-meta keeps groups as Meta's Groups API does (created
//! asynchronously, joined by invite link with approval, emptied, deleted) and tells each change
//! to wagate by Meta's signed webhooks, which wagate takes (and, until it mirrors groups,
//! counts as events it does not act on).

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_meta_keeps_a_group_s_life_and_tells_wagate_each_change() -> Result<()> {
    let (_mock, base, mut f) = with_plain_mock_meta("groups-mock").await?;
    let post = |path: &str, body: Value| {
        let (web, url) = (f.web.clone(), format!("{base}{path}"));
        async move { web.post(&url, "meta-token", &body, &[]).await }
    };
    let created = post(
        &format!("/v23.0/{NUMBER_A}/groups"),
        json!({ "messaging_product": "whatsapp", "subject": "Buyers",
                "join_approval_mode": "approval_required" }),
    )
    .await?;
    assert_eq!(created.status, 200, "{}", created.text());
    assert!(created.json()["request_id"].is_string());
    let groups = f.web.get(&format!("{base}/mock/groups"), "").await?.json();
    let group = groups["data"][0].clone();
    let (id, link) = (
        group["id"].as_str().unwrap_or_default().to_string(),
        group["invite_link"].clone(),
    );
    let joined = post(
        "/mock/group_join",
        json!({ "invite_link": link, "wa_id": "16505550001" }),
    )
    .await?;
    assert_eq!(joined.status, 200, "{}", joined.text());
    let requests = f
        .web
        .get(&format!("{base}/v23.0/{id}/join_requests"), "meta-token")
        .await?
        .json();
    let request = requests["data"][0]["join_request_id"].clone();
    let approved = post(
        &format!("/v23.0/{id}/join_requests"),
        json!({ "messaging_product": "whatsapp", "join_requests": [request] }),
    )
    .await?;
    assert_eq!(approved.json()["approved_join_requests"], json!([request]));
    let info = f
        .web
        .get(&format!("{base}/v23.0/{id}"), "meta-token")
        .await?
        .json();
    assert_eq!(info["total_participant_count"], 1, "{info}");
    // Meta's webhooks for the creation, the join request and the join reached wagate, signed.
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let report = f.web.get(&format!("{base}/mock/report"), "").await?.json();
        let metrics = f.web.get(&f.url("/metrics"), "").await?.text();
        let ignored = metric_value(&metrics, "wagate_webhook_events_ignored_total").unwrap_or(0.0);
        if report["webhooks_pending"] == 0 && ignored >= 3.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report} {ignored}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f.stop()
}
