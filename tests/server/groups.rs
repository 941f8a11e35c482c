//! Groups: mock-meta keeps groups as Meta's Groups API does (created asynchronously, joined
//! by invite link with approval, left, emptied, deleted) and tells each change to wagate by
//! Meta's signed webhooks; wagate passes each to the tenant of the number it concerns, once,
//! mirrors the groups from them, judges every group call and send by the profile's group rules
//! before Meta hears of it, and sends to groups like any send, with each participant's status.

use crate::support::fixture::*;
use crate::support::web::Answer;
use anyhow::{bail, Result};
use hyper::Method;
use serde_json::{json, Value};
use wagate_loadgen::mock_groups::GroupLimits;
use wagate_loadgen::mock_meta::MockMeta;
use wagate_loadgen::oracle::NumberLimits;

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

/// A tenant's view of groups through wagate, with mock-meta standing in for Meta and its users.
struct GroupsAt {
    mock: MockMeta,
    base: String,
    f: Fixture,
}

impl GroupsAt {
    /// mock-meta keeping groups by `limits`, wagate on `profile` naming the `groups` topic,
    /// both clocks at the fixture's start.
    async fn start(name: &str, profile: &str, limits: GroupLimits) -> Result<GroupsAt> {
        let limits_at_meta = NumberLimits {
            messages_per_second: 1_000,
            tier_limit: 1_000,
        };
        let mut config = mock_meta_config(Default::default(), limits_at_meta, None)?;
        config.group_limits = limits;
        let extra = "[consent]\ntopics = [\"groups\"]\n";
        let (mock, base, f) =
            with_mock_meta_config(name, config, extra, &["--engine.profile", profile]).await?;
        let at = GroupsAt { mock, base, f };
        at.mock_post("/mock/clock", json!({ "unix_secs": START_UNIX }))
            .await?;
        at.f.approved_template("order_update", "utility", ORDER_UPDATE)
            .await?;
        at.f.approved_template("auth_code", "authentication", "Your code is {{1}}.")
            .await?;
        Ok(at)
    }

    async fn mock_post(&self, path: &str, body: Value) -> Result<Answer> {
        self.f
            .web
            .post(&format!("{}{path}", self.base), "", &body, &[])
            .await
    }

    /// A call through wagate's base URL as tenant alpha.
    async fn call(&self, method: Method, path: &str, body: Value) -> Result<Answer> {
        let auth = format!("Bearer {ALPHA}");
        self.f
            .web
            .request(
                method,
                &self.f.url(&format!("/v23.0/{path}")),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await
    }

    /// wagate's mirror of the group (as the tenant reads it).
    async fn mirror(&self, id: &str) -> Result<Value> {
        Ok(self
            .f
            .web
            .get(&self.f.url(&format!("/wagate/v1/groups/{id}")), ALPHA)
            .await?
            .json())
    }

    /// Waits until wagate's mirror of the group satisfies `done`.
    async fn wait_mirror(&self, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let group = self.mirror(id).await?;
            if done(&group) {
                return Ok(group);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the mirror of {id} never got there: {group}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// What mock-meta keeps of the group.
    async fn at_meta(&self, id: &str) -> Result<Value> {
        let all = self
            .f
            .web
            .get(&format!("{}/mock/groups", self.base), "")
            .await?
            .json();
        Ok(all["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["id"] == id)
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Creates a group through wagate and waits for Meta's word on it: its id.
    async fn create(&self, subject: &str, mode: &str) -> Result<String> {
        let created = self
            .call(
                Method::POST,
                &format!("{NUMBER_A}/groups"),
                json!({ "messaging_product": "whatsapp", "subject": subject,
                        "description": "Orders and offers", "join_approval_mode": mode }),
            )
            .await?;
        if created.status != 200 {
            bail!("creating a group: {}", created.text());
        }
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let list = self
                .f
                .web
                .get(
                    &self
                        .f
                        .url(&format!("/wagate/v1/groups?phone_number_id={NUMBER_A}")),
                    ALPHA,
                )
                .await?
                .json();
            if let Some(group) = list["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["subject"] == subject)
            {
                return Ok(group["id"].as_str().unwrap_or_default().to_string());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the group was never created: {list}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// `people` tap the group's invite link (asking to join when the group wants approval).
    async fn tap(&self, id: &str, people: &[String]) -> Result<()> {
        let link = self.mirror(id).await?["invite_link"].clone();
        for person in people {
            let tapped = self
                .mock_post(
                    "/mock/group_join",
                    json!({ "invite_link": link, "wa_id": person }),
                )
                .await?;
            if tapped.status != 200 {
                bail!("{person} could not tap the link: {}", tapped.text());
            }
        }
        Ok(())
    }

    async fn send(&self, id: &str, message: Value) -> Result<Answer> {
        let mut body = json!({ "messaging_product": "whatsapp", "recipient_type": "group",
                               "to": id });
        for (key, value) in message.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        self.f.send(ALPHA, NUMBER_A, &body, &[]).await
    }

    /// A free-form message is refused outside the group's window; then `from` writes in the
    /// group and the window opens: the id of what they wrote.
    async fn window_opened_by(&self, id: &str, from: &str) -> Result<String> {
        refused_for(
            &self.send(id, text("Welcome")).await?,
            131_047,
            "outside_group_window",
        );
        let wrote = self
            .mock_post(
                "/mock/group_message",
                json!({ "group_id": id, "from": from, "text": "Hello?" }),
            )
            .await?;
        self.wait_mirror(id, |g| g["service_window_open"] == true)
            .await?;
        Ok(wrote.json()["id"].as_str().unwrap_or_default().to_string())
    }

    /// Interactive messages, authentication templates and read marks of a group's messages
    /// (`group_wamid`) are refused before Meta.
    async fn refuses_what_a_group_does_not_take(&self, id: &str, group_wamid: &str) -> Result<()> {
        let before = self.sends_at_meta().await?["sends"].clone();
        let interactive = json!({ "type": "interactive", "interactive": { "type": "button",
            "body": { "text": "Pick" }, "action": { "buttons": [{ "type": "reply",
            "reply": { "id": "a", "title": "A" } }] } } });
        refused_for(
            &self.send(id, interactive).await?,
            131_051,
            "group_message_type",
        );
        refused_for(
            &self.send(id, template("auth_code")).await?,
            100,
            "group_template_category",
        );
        let mark = json!({ "messaging_product": "whatsapp", "status": "read",
                           "message_id": group_wamid });
        let mark = self.f.send(ALPHA, NUMBER_A, &mark, &[]).await?;
        refused_for(&mark, 100, "group_read_mark");
        assert_eq!(
            self.sends_at_meta().await?["sends"],
            before,
            "Meta heard nothing"
        );
        Ok(())
    }

    async fn sends_at_meta(&self) -> Result<Value> {
        Ok(self
            .f
            .web
            .get(&format!("{}/mock/report", self.base), "")
            .await?
            .json())
    }
}

fn people(n: u64) -> Vec<String> {
    (1..=n).map(|i| person(500 + i)).collect()
}

fn text(body: &str) -> Value {
    json!({ "type": "text", "text": { "body": body } })
}

fn template(name: &str) -> Value {
    json!({ "type": "template", "template": { "name": name, "language": { "code": "en_US" },
            "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "Ada" }] }] } })
}

/// A refusal in Meta's error shape, with wagate's reason.
fn refused_for(answer: &Answer, code: u64, reason: &str) {
    assert_eq!(answer.status, 400, "{}", answer.text());
    let error = &answer.json()["error"];
    assert_eq!(error["code"], code, "{}", answer.text());
    assert_eq!(error["type"], "OAuthException", "{}", answer.text());
    assert!(
        answer.text().contains(reason),
        "{reason} in {}",
        answer.text()
    );
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.starts_with(&format!("(#{code})"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_s_whole_life_through_wagate_under_2025() -> Result<()> {
    let mut at = GroupsAt::start("groups-2025", "whatsapp-2025", GroupLimits::default()).await?;
    // Rules before Meta: a subject Meta would not take.
    let long = at
        .call(
            Method::POST,
            &format!("{NUMBER_A}/groups"),
            json!({ "messaging_product": "whatsapp", "subject": "s".repeat(129) }),
        )
        .await?;
    refused_for(&long, 100, "group_text_too_long");
    assert_eq!(
        at.f.web
            .get(&format!("{}/mock/groups", at.base), "")
            .await?
            .json()["data"],
        json!([])
    );
    // Created: Meta's webhook completes it in wagate's mirror.
    let id = at.create("Buyers", "approval_required").await?;
    let group = at.mirror(&id).await?;
    assert_eq!(group["join_approval_mode"], "approval_required");
    assert_eq!(group["description"], "Orders and offers");
    assert!(group["invite_link"].is_string(), "{group}");
    // Nine ask to join; approving all nine at once would pass the 8 a group holds.
    let nine = people(9);
    at.tap(&id, &nine).await?;
    let group = at
        .wait_mirror(&id, |g| {
            g["join_requests"].as_array().map_or(0, Vec::len) == 9
        })
        .await?;
    let requests: Vec<Value> = group["join_requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["join_request_id"].clone())
        .collect();
    let approving = format!("{id}/join_requests");
    let approve = |requests: &[Value]| {
        at.call(
            Method::POST,
            &approving,
            json!({ "messaging_product": "whatsapp", "join_requests": requests }),
        )
    };
    refused_for(&approve(&requests).await?, 100, "group_full");
    assert_eq!(at.at_meta(&id).await?["participants"], json!([]));
    let approved = approve(&requests[..8]).await?;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let group = at
        .wait_mirror(&id, |g| g["total_participant_count"] == 8)
        .await?;
    assert_eq!(group["join_requests"].as_array().map(Vec::len), Some(1));
    // The one left asking is turned down; the mirror follows Meta's answer.
    let rejected = at
        .call(
            Method::DELETE,
            &format!("{id}/join_requests"),
            json!({ "messaging_product": "whatsapp", "join_requests": [requests[8]] }),
        )
        .await?;
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    assert_eq!(at.mirror(&id).await?["join_requests"], json!([]));
    // A new subject, by Meta's webhook; one too long never reaches Meta.
    let renamed = at
        .call(
            Method::POST,
            &id,
            json!({ "messaging_product": "whatsapp", "subject": "Buyers club" }),
        )
        .await?;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    at.wait_mirror(&id, |g| g["subject"] == "Buyers club")
        .await?;
    refused_for(
        &at.call(
            Method::POST,
            &id,
            json!({ "description": "d".repeat(2_049) }),
        )
        .await?,
        100,
        "group_text_too_long",
    );
    // A new invite link: the mirror keeps the one Meta answered.
    let reset = at
        .call(
            Method::POST,
            &format!("{id}/invite_link"),
            json!({ "messaging_product": "whatsapp" }),
        )
        .await?;
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(
        at.mirror(&id).await?["invite_link"],
        reset.json()["invite_link"]
    );
    // Nobody is added by the business under 2025: invite link only.
    let added = at
        .call(
            Method::POST,
            &format!("{id}/participants"),
            json!({ "messaging_product": "whatsapp", "participants": [{ "user": person(599) }] }),
        )
        .await?;
    refused_for(&added, 100, "group_invite_only");
    // Free-form only inside the group's window: nobody has written yet.
    let group_wamid = at.window_opened_by(&id, &nine[0]).await?;
    at.refuses_what_a_group_does_not_take(&id, &group_wamid)
        .await?;
    // A text and a template go, each participant's status kept.
    for (message, pricing) in [
        (text("Welcome, all"), "group_service"),
        (template("order_update"), "group_utility"),
    ] {
        // The manual clock: the next throughput slot is reached by moving it.
        advance(&at.f, 1).await?;
        let sent = at.send(&id, message).await?;
        assert_eq!(sent.status, 200, "{}", sent.text());
        assert_eq!(sent.json()["messages"][0]["group_id"], id.as_str());
        let view =
            at.f.wait_message(&sent.message_id(), crate::WAIT, |v| {
                v["group"]["participants"]
                    .as_array()
                    .is_some_and(|p| p.len() == 8 && p.iter().all(|p| p["status"] == "read"))
            })
            .await?;
        assert_eq!(view["delivery"], "read", "{view}");
        assert_eq!(view["group"]["group_id"], id.as_str());
        assert_eq!(view["group"]["pricing_category"], pricing);
    }
    // Decided when asked (its participants' consent read then): never scheduled.
    let later =
        at.f.send(
            ALPHA,
            NUMBER_A,
            &json!({ "messaging_product": "whatsapp", "recipient_type": "group", "to": id,
                     "type": "text", "text": { "body": "Tomorrow" } }),
            &[("x-wagate-send-at", &(START_UNIX + 86_400).to_string())],
        )
        .await?;
    refused_for(&later, 100, "group_send_not_later");
    // A retry with the same key is the same send: one message, once at Meta.
    advance(&at.f, 1).await?;
    let mut keyed = json!({ "messaging_product": "whatsapp", "recipient_type": "group", "to": id });
    for (key, value) in template("order_update").as_object().into_iter().flatten() {
        keyed[key] = value.clone();
    }
    let key = [("idempotency-key", "group-offer-1")];
    let first = at.f.send(ALPHA, NUMBER_A, &keyed, &key).await?;
    let again = at.f.send(ALPHA, NUMBER_A, &keyed, &key).await?;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.message_id(), again.message_id());
    at.f.wait_message(&first.message_id(), crate::WAIT, |v| {
        v["delivery"] == "read"
    })
    .await?;
    // An opt-out means stop: while someone who withdrew is in the group, nothing goes to it.
    let out = at
        .f
        .admin(
            "/wagate/admin/contacts/consent",
            json!({ "phone_number_id": NUMBER_A.to_string(), "to": [nine[1]], "change": "opt_out" }),
        )
        .await?;
    assert_eq!(out.status, 200, "{}", out.text());
    refused_for(
        &at.send(&id, template("order_update")).await?,
        100,
        "group_participant_withdrew",
    );
    refused_for(
        &at.send(&id, text("Still there?")).await?,
        100,
        "group_participant_withdrew",
    );
    // They leave (anyone may); the group takes messages again.
    let left = at
        .mock_post(
            "/mock/group_leave",
            json!({ "group_id": id, "wa_id": nine[1] }),
        )
        .await?;
    assert_eq!(left.status, 200, "{}", left.text());
    at.wait_mirror(&id, |g| g["total_participant_count"] == 7)
        .await?;
    advance(&at.f, 1).await?;
    let sent = at.send(&id, template("order_update")).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    // The business removes one.
    let removed = at
        .call(
            Method::DELETE,
            &format!("{id}/participants"),
            json!({ "messaging_product": "whatsapp", "participants": [{ "user": nine[2] }] }),
        )
        .await?;
    assert_eq!(removed.status, 200, "{}", removed.text());
    at.wait_mirror(&id, |g| g["total_participant_count"] == 6)
        .await?;
    // Meta's retry of a join, after its person left, applies nothing.
    let retry = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{
        "field": "group_participants_update", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": DISPLAY_A.to_string(), "phone_number_id": NUMBER_A.to_string() },
            "groups": [{ "timestamp": "1", "group_id": id, "type": "group_participants_remove",
                         "removed_participants": [{ "wa_id": nine[2] }] }] } }] }] });
    let first = at.f.meta_webhook(&retry, None).await?.json();
    assert_eq!(first["repeats"], 0, "a new identity is applied: {first}");
    let again = at.f.meta_webhook(&retry, None).await?.json();
    assert_eq!(
        (again["applied"].clone(), again["repeats"].clone()),
        (json!(0), json!(1))
    );
    // The mirror outlives a restart.
    let before = at.mirror(&id).await?;
    at.f.stop()?;
    at.f.restart()?;
    at.mock.set_webhook_url(&at.f.url("/webhooks/meta"));
    assert_eq!(at.mirror(&id).await?, before);
    // Deleted: gone from the mirror, and no send goes to it.
    let deleted = at.call(Method::DELETE, &id, json!({})).await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    while at.mirror(&id).await?["id"].is_string() {
        assert!(tokio::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    refused_for(
        &at.send(&id, template("order_update")).await?,
        100,
        "unknown_group",
    );
    let report = at.sends_at_meta().await?;
    assert_eq!(report["violations"], 0, "{}", report["violations_by_code"]);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(
        report["accepted"], 4,
        "four group sends reached Meta, each once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_2021_people_are_added_with_their_opt_in_for_groups_up_to_1024() -> Result<()> {
    let seeds = GroupLimits {
        max_participants: 1_024,
        direct_add: true,
    };
    let at = GroupsAt::start("groups-2021", "whatsapp-2021", seeds).await?;
    let id = at.create("Neighbours", "auto_approve").await?;
    let adding = format!("{id}/participants");
    let add = |who: &[String]| {
        let participants: Vec<Value> = who.iter().map(|p| json!({ "user": p })).collect();
        at.call(
            Method::POST,
            &adding,
            json!({ "messaging_product": "whatsapp", "participants": participants }),
        )
    };
    let consent = |who: &[String], change: &str, topics: Option<&[&str]>| {
        let mut body =
            json!({ "phone_number_id": NUMBER_A.to_string(), "to": who, "change": change });
        if let Some(topics) = topics {
            body["topics"] = json!(topics);
        }
        at.f.admin("/wagate/admin/contacts/consent", body)
    };
    let many: Vec<String> = (1..=1_025).map(|i| person(10_000 + i)).collect();
    // Nobody is added without a recorded opt-in for groups: not with none, not with a plain
    // opt-in to messages, not after withdrawing groups.
    refused_for(&add(&many[..1]).await?, 100, "no_group_opt_in");
    assert_eq!(consent(&many[..1], "opt_in", None).await?.status, 200);
    refused_for(&add(&many[..1]).await?, 100, "no_group_opt_in");
    assert_eq!(
        consent(&many[..1], "opt_in", Some(&["groups"]))
            .await?
            .status,
        200
    );
    assert_eq!(
        consent(&many[..1], "opt_out", Some(&["groups"]))
            .await?
            .status,
        200
    );
    refused_for(&add(&many[..1]).await?, 100, "no_group_opt_in");
    assert_eq!(at.at_meta(&id).await?["participants"], json!([]));
    // With it, up to 1,024 (the seeds' figure), added by the business.
    assert_eq!(
        consent(&many, "opt_in", Some(&["groups"])).await?.status,
        200
    );
    let added = add(&many[..1_024]).await?;
    assert_eq!(added.status, 200, "{}", added.text());
    at.wait_mirror(&id, |g| g["total_participant_count"] == 1_024)
        .await?;
    refused_for(&add(&many[1_024..]).await?, 100, "group_full");
    // A template reaches all of them; each one's status is kept.
    let sent = at.send(&id, template("order_update")).await?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let view =
        at.f.wait_message(&sent.message_id(), crate::WAIT, |v| {
            v["group"]["participants"]
                .as_array()
                .is_some_and(|p| p.len() == 1_024 && p.iter().all(|p| p["status"] == "read"))
        })
        .await?;
    assert_eq!(view["group"]["pricing_category"], "group_utility");
    // Free-form needs the group's window, under 2021 as well; a participant's message opens it.
    advance(&at.f, 1).await?;
    let group_wamid = at.window_opened_by(&id, &many[0]).await?;
    at.refuses_what_a_group_does_not_take(&id, &group_wamid)
        .await?;
    let report = at.sends_at_meta().await?;
    assert_eq!(report["violations"], 0, "{}", report["violations_by_code"]);
    assert_eq!(report["accepted"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_keeps_no_more_groups_than_its_profile_says_under_both() -> Result<()> {
    for (name, text) in [
        (
            "whatsapp-2021",
            include_str!("../../engine/rules/profiles/whatsapp-2021.toml"),
        ),
        (
            "whatsapp-2025",
            include_str!("../../engine/rules/profiles/whatsapp-2025.toml"),
        ),
    ] {
        // The profile's own figure, as a provider's profile file may set it: two a number.
        let dir = fresh_dir(&format!("groups-cap-profile-{name}"));
        let file = dir.join(format!("{name}.toml"));
        let text = text.replace("max_groups_per_number = 10000", "max_groups_per_number = 2");
        assert!(text.contains("max_groups_per_number = 2"));
        std::fs::write(&file, text)?;
        let file = file.to_string_lossy().into_owned();
        let at =
            GroupsAt::start(&format!("groups-cap-{name}"), &file, GroupLimits::default()).await?;
        at.create("One", "auto_approve").await?;
        at.create("Two", "auto_approve").await?;
        let third = at
            .call(
                Method::POST,
                &format!("{NUMBER_A}/groups"),
                json!({ "messaging_product": "whatsapp", "subject": "Three" }),
            )
            .await?;
        refused_for(&third, 100, "too_many_groups");
        let at_meta =
            at.f.web
                .get(&format!("{}/mock/groups", at.base), "")
                .await?
                .json();
        assert_eq!(at_meta["data"].as_array().map(Vec::len), Some(2), "{name}");
    }
    Ok(())
}
