//! The published API description against the running server.

use crate::support::fixture::*;
use anyhow::Result;
use serde_json::{json, Value};

/// `v`, or what its `$ref` names in `doc`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(reference) => reference
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |node, part| &node[part]),
        None => v,
    }
}

/// The response schema documented for `status` of an operation, `$ref`s resolved.
fn documented_schema<'a>(doc: &'a Value, operation: &'a Value, status: u16) -> Option<&'a Value> {
    let response = resolve(doc, &operation["responses"][status.to_string()]);
    if response.is_null() {
        return None;
    }
    let schema = &response["content"]["application/json"]["schema"];
    (!schema.is_null()).then(|| resolve(doc, schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_running_server() -> Result<()> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))?;
    let doc: Value = serde_yaml_ng::from_str(&text)?;
    let automation =
        "[[tenants.automations]]\nevent = \"appointment_booked\"\ntemplate = \"order_update\"\n";
    let (mut f, to) = Fixture::ready_for("openapi", automation, 3).await?;
    let template = template_send(&to, "order_update", &["Ada"]);
    let sent = f.send(ALPHA, NUMBER_A, &template, &[]).await?;
    let id = sent.message_id();
    let scheduled = f
        .send(
            ALPHA,
            NUMBER_A,
            &template,
            &[("x-wagate-send-at", &(START_UNIX + 3_600).to_string())],
        )
        .await?
        .message_id();
    let bulk_line =
        json!({ "phone_number_id": NUMBER_A.to_string(), "request": template }).to_string();
    let audience = json!({ "to": to, "parameters": ["Ada"] }).to_string();
    let campaigns =
        format!("/wagate/v1/campaigns?phone_number_id={NUMBER_A}&template=order_update");
    let campaign = post_bulk(&f.web, &f.url(&campaigns), ALPHA, audience.clone())
        .await?
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A group of NUMBER_A, as Meta's webhook tells its creation.
    let created = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{
        "field": "group_lifecycle_update", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": DISPLAY_A.to_string(), "phone_number_id": NUMBER_A.to_string() },
            "groups": [{ "group_id": "GROUP1", "type": "group_create", "request_id": "R1",
                         "subject": "Buyers", "invite_link": "https://chat.whatsapp.com/L1" }] } }] }] });
    assert_eq!(f.meta_webhook(&created, None).await?.status, 200);
    let webhook = status_webhook(NUMBER_A, "wamid.unknown", "delivered", "16505550003").to_string();
    let signed = signature(APP_SECRET, webhook.as_bytes());
    // A request that succeeds for each documented operation.
    let probes: Vec<(&str, String, &str, String, &str)> = vec![
        ("post", format!("/v23.0/{NUMBER_A}/messages"), ALPHA, template.to_string(), "application/json"),
        ("post", "/wagate/v1/bulk".into(), ALPHA, bulk_line + "\n", "application/x-ndjson"),
        ("get", format!("/wagate/v1/messages/{id}"), ALPHA, String::new(), ""),
        ("get", format!("/wagate/v1/scheduled?phone_number_id={NUMBER_A}"), ALPHA, String::new(), ""),
        ("get", format!("/wagate/v1/groups?phone_number_id={NUMBER_A}"), ALPHA, String::new(), ""),
        ("get", "/wagate/v1/groups/GROUP1".into(), ALPHA, String::new(), ""),
        ("post", campaigns.clone(), ALPHA, audience, "application/x-ndjson"),
        ("post", "/wagate/v1/events".into(), BETA,
         json!({ "event": "appointment_booked", "phone_number_id": NUMBER_B.to_string(),
                 "to": to, "at": START_UNIX + 86_400 }).to_string(), "application/json"),
        ("get", "/wagate/v1/campaigns".into(), ALPHA, String::new(), ""),
        ("get", format!("/wagate/v1/campaigns/{campaign}"), ALPHA, String::new(), ""),
        ("post", format!("/wagate/v1/campaigns/{campaign}/start"), ALPHA, String::new(), ""),
        ("post", "/wagate/v1/campaigns/plan".into(), ALPHA, json!({ "phone_number_id": NUMBER_A.to_string(), "audience": 5_000 }).to_string(), "application/json"),
        ("patch", format!("/wagate/v1/messages/{scheduled}"), ALPHA, json!({ "send_at": START_UNIX + 7_200 }).to_string(), "application/json"),
        ("delete", format!("/wagate/v1/messages/{scheduled}"), ALPHA, String::new(), ""),
        ("get", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=5".into(), "", String::new(), ""),
        ("post", "/webhooks/meta".into(), "", webhook, "application/json"),
        ("post", "/wagate/admin/numbers".into(), ADMIN,
         json!({ "id": 3001, "account": 3, "portfolio": 3, "display_phone_number": "+15550003001" }).to_string(), "application/json"),
        ("get", format!("/wagate/admin/numbers/{NUMBER_A}/usage"), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/numbers".into(), ADMIN, String::new(), ""),
        ("get", format!("/wagate/admin/numbers/{NUMBER_A}/capacity"), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/templates".into(), ADMIN, String::new(), ""),
        ("post", "/wagate/admin/templates/lint".into(), ADMIN,
         json!({ "account": 1, "name": "note", "language": "en_US", "category": "utility", "body": "{{1}} shipped" }).to_string(), "application/json"),
        ("post", format!("/wagate/admin/numbers/{NUMBER_A}/quality"), ADMIN, json!({ "quality": "GREEN" }).to_string(), "application/json"),
        ("post", "/wagate/admin/templates".into(), ADMIN,
         json!({ "account": 1, "name": "welcome", "language": "en_US", "category": "marketing", "body": "Hi {{1}}" }).to_string(), "application/json"),
        ("post", "/wagate/admin/templates/status".into(), ADMIN,
         json!({ "account": 1, "name": "welcome", "language": "en_US", "status": "in_review" }).to_string(), "application/json"),
        ("post", "/wagate/admin/contacts/consent".into(), ADMIN,
         json!({ "phone_number_id": NUMBER_A.to_string(), "to": [person(4), person(5)], "change": "opt_in" }).to_string(), "application/json"),
        ("get", format!("/wagate/admin/contacts/{NUMBER_A}/{to}"), ADMIN, String::new(), ""),
        ("get", format!("/wagate/admin/contacts/{NUMBER_A}/{to}/history"), ADMIN, String::new(), ""),
        ("get", format!("/wagate/admin/consent/export?phone_number_id={NUMBER_A}&format=csv"), ADMIN, String::new(), ""),
        ("post", "/wagate/admin/consent/import".into(), ADMIN,
         format!("phone_number_id,to,change,topics,source,evidence\n{NUMBER_A},{},opt_in,,paper,\n", person(6)), "text/csv"),
        ("delete", format!("/wagate/admin/contacts/{NUMBER_A}/{}?by=contract", person(5).trim_start_matches('+')), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/audit".into(), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/ledger".into(), ADMIN, String::new(), ""),
        ("get", "/wagate/admin/messages/in_flight".into(), ADMIN, String::new(), ""),
        // Nothing is in flight here: the documented 409.
        ("post", format!("/wagate/admin/messages/{id}/settle"), ADMIN, json!({ "resend": true }).to_string(), "application/json"),
        ("get", "/wagate/admin/clock".into(), ADMIN, String::new(), ""),
        ("post", "/wagate/admin/clock".into(), ADMIN, json!({ "advance_secs": 1 }).to_string(), "application/json"),
        ("post", format!("/v23.0/{NUMBER_A}/messages"), ALPHA,
         json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in.1" }).to_string(), "application/json"),
        ("get", format!("/v23.0/{NUMBER_A}?fields=quality_rating"), ALPHA, String::new(), ""),
        ("post", format!("/v23.0/{NUMBER_A}"), ALPHA, json!({ "pin": "123456" }).to_string(), "application/json"),
        ("delete", "/v23.0/1".into(), ALPHA, String::new(), ""),
        ("get", "/v23.0/1/phone_numbers".into(), ALPHA, String::new(), ""),
        ("post", format!("/v23.0/{NUMBER_A}/register"), ALPHA, json!({ "messaging_product": "whatsapp", "pin": "123456" }).to_string(), "application/json"),
        ("delete", "/v23.0/1/subscribed_apps".into(), ALPHA, String::new(), ""),
        ("get", "/v23.0/1/message_templates".into(), ALPHA, String::new(), ""),
        ("post", "/v23.0/1/message_templates".into(), ALPHA,
         json!({ "name": "greeting", "language": "en_US", "category": "MARKETING",
                 "components": [{ "type": "BODY", "text": "Hello {{1}}, welcome." }] }).to_string(), "application/json"),
        ("delete", "/v23.0/1/message_templates?name=greeting".into(), ALPHA, String::new(), ""),
        ("post", "/wagate/admin/sync".into(), ADMIN, String::new(), ""),
        ("post", format!("/v23.0/{NUMBER_A}/media"), ALPHA,
         "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\
          PNG\r\n--b\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n--b--\r\n".into(),
         "multipart/form-data; boundary=b"),
        ("get", "/v23.0/777".into(), ALPHA, String::new(), ""),
        ("get", "/wagate/v1/media/777/content".into(), ALPHA, String::new(), ""),
        ("get", "/metrics".into(), "", String::new(), ""),
        ("get", "/healthz".into(), "", String::new(), ""),
    ];
    // The documented path a request's path falls under: of those it matches, the one naming
    // the most of its segments literally (`/wagate/admin/clock` before `/{version}/{id}/{edge}`).
    let template_of = |path: &str| {
        let path = path.split('?').next().unwrap_or(path);
        let asked: Vec<&str> = path.split('/').collect();
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|documented| {
                let parts: Vec<&str> = documented.split('/').collect();
                let matches = parts.len() == asked.len()
                    && parts
                        .iter()
                        .zip(&asked)
                        .all(|(x, y)| x.starts_with('{') || x == y);
                let literal = parts.iter().filter(|x| !x.starts_with('{')).count();
                matches.then_some((literal, documented))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, documented)| documented.clone())
    };
    let mut covered = std::collections::BTreeSet::new();
    for (method, path, token, body, content_type) in &probes {
        let documented = template_of(path).unwrap_or_else(|| panic!("{path} is not documented"));
        let operation = &doc["paths"][&documented][method];
        assert!(
            operation.is_object(),
            "{method} {documented} is not documented"
        );
        covered.insert(format!("{method} {documented}"));
        let auth = format!("Bearer {token}");
        let mut headers = Vec::new();
        if !token.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        if !content_type.is_empty() {
            headers.push(("content-type", *content_type));
        }
        if *method == "post" && documented == "/webhooks/meta" {
            headers.push(("x-hub-signature-256", signed.as_str()));
        }
        let verb = match *method {
            "get" => hyper::Method::GET,
            "delete" => hyper::Method::DELETE,
            "patch" => hyper::Method::PATCH,
            _ => hyper::Method::POST,
        };
        let answer = f
            .web
            .request(verb.clone(), &f.url(path), &headers, body.clone())
            .await?;
        let expected = if path.ends_with("/settle") {
            409
        } else if *path == campaigns {
            201
        } else {
            200
        };
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}",
            answer.text()
        );
        if let Some(schema) = documented_schema(&doc, operation, answer.status) {
            // One of the documented shapes (`oneOf`), each named by `$ref`, or the one shape.
            let json = answer.json();
            let shapes: Vec<&Value> = match schema["oneOf"].as_array() {
                Some(choices) => choices.iter().map(|c| resolve(&doc, c)).collect(),
                None => vec![schema],
            };
            let has_required = |shape: &Value| {
                shape["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|field| json.get(field.as_str().unwrap()).is_some())
            };
            assert!(
                shapes.iter().any(|shape| has_required(shape)),
                "{method} {path}: {json} has the required fields of none of {shapes:?}"
            );
        }
        // Without credentials, secured operations answer a documented 401 in Meta's shape.
        let open = operation.get("security").is_some_and(|s| s == &json!([]));
        if !open && !documented.starts_with("/webhooks") {
            let anonymous = f.web.request(verb, &f.url(path), &[], body.clone()).await?;
            assert_eq!(anonymous.status, 401, "{method} {path} without a token");
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {documented}: 401 undocumented"
            );
            let error = documented_schema(&doc, operation, 401).unwrap();
            for field in error["required"].as_array().into_iter().flatten() {
                assert!(anonymous.json().get(field.as_str().unwrap()).is_some());
            }
        }
    }
    let documented: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    assert_eq!(documented, covered, "every documented operation is probed");
    let unknown = f.web.get(&f.url("/wagate/v1/nothing-here"), ADMIN).await?;
    assert_eq!((unknown.status, unknown.code()), (404, Some(100)));
    f.stop()
}
