//! Groups, as far as they go: mock-meta keeps groups as Meta's Groups API does (created
//! asynchronously, joined by invite link with approval, emptied, deleted) and tells each change
//! to wagate by Meta's signed webhooks; wagate passes each to the tenant of the number it
//! concerns, once (it does not mirror groups yet).

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
    // Meta's webhooks for the creation, the join request and the join reached wagate, signed,
    // and went on to the number's tenant as Meta wrote them.
    let told = |f: &Fixture| -> Vec<(String, String)> {
        f.sink
            .received()
            .into_iter()
            .map(|r| r.json()["entry"][0]["changes"][0].clone())
            .filter(|c| c["field"].as_str().is_some_and(|f| f.starts_with("group_")))
            .map(|c| {
                let item = &c["value"]["groups"][0];
                (
                    c["field"].as_str().unwrap_or("").to_string(),
                    item["type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while told(&f).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", told(&f));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut kinds = told(&f);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("group_lifecycle_update".into(), "group_create".into()),
            (
                "group_participants_update".into(),
                "group_join_request_created".into()
            ),
            (
                "group_participants_update".into(),
                "group_participants_add".into()
            ),
        ]
    );
    // Meta's retry of a group webhook goes to the tenant once.
    let delete = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{
        "field": "group_lifecycle_update", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001001", "phone_number_id": NUMBER_A.to_string() },
            "groups": [{ "timestamp": "1", "group_id": id, "type": "group_delete", "request_id": "R" }] } }] }] });
    for _ in 0..2 {
        assert_eq!(f.meta_webhook(&delete, None).await?.status, 200);
    }
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while told(&f).len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", told(&f));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Nothing more comes: the forward queue is drained and the retry was not queued.
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let metrics = f.web.get(&f.url("/metrics"), "").await?.text();
        if metric_value(&metrics, "wagate_forward_backlog") == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forward queue never drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(told(&f).len(), 4, "{:?}", told(&f));
    f.stop()
}
