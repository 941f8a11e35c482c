//! `mock-meta`: a stand-in for Meta's Cloud API. It answers the send API in Meta's shapes,
//! judging each send with the [`Oracle`] (so violations get Meta's error and are counted), and
//! sends signed status webhooks for what it accepted to wagate (sent, then delivered and
//! sometimes read, or failed with 131026). Injected [`Faults`] (500s, dropped connections, slow
//! answers) exercise wagate's retries. `GET /mock/report` gives the
//! counts; `POST /mock/inbound` makes a person write (a signed inbound webhook);
//! `POST /mock/record_sends` then `GET /mock/sent?number=&to=` say what Meta took for a person
//! (wamids and first parameters), as an operator settling a message in flight would look up.
//!
//! It also answers the Graph reads wagate syncs from (`GET /{waba_id}/message_templates`,
//! `GET /{waba_id}/phone_numbers`) in Meta's shapes, and lets a test change Meta's side with no
//! webhook: `POST /mock/template_status` (`{name, language, status}`) and
//! `POST /mock/number_quality` (`{phone_number_id, quality_rating}`).
//!
//! Media as Meta keeps it (`media`): upload (`POST /{number}/media`, multipart), the URL of a
//! media id (`GET /{media_id}`, checked against `phone_number_id` when given), delete, and the
//! file itself at that URL (only with a bearer token, as Meta's media URLs ask). Registration
//! (`register`, `deregister`, `request_code`, `verify_code`) answers success, and 133016 past
//! 10 register/deregister calls of a number in 72 h.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::serve::serve_http1;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::mock_groups::{GroupLimits, GroupNews, Groups};
use crate::mock_media::{self as media, MediaStore};
use crate::oracle::{Announce, Oracle, OracleConfig, TemplateState, Verdict};

#[derive(Debug, Clone)]
pub struct MockMetaConfig {
    pub listen: SocketAddr,
    /// wagate's `POST /webhooks/meta`; no webhooks are sent until it is known (it can be set
    /// later, since wagate is configured with mock-meta's address first).
    pub webhook_url: Option<String>,
    pub app_secret: String,
    /// Approved templates, as (name, language).
    pub templates: Vec<(String, String)>,
    pub rules: OracleConfig,
    pub faults: Faults,
    /// Display numbers by phone number id: how Meta names a number in its number webhooks
    /// (a tier upgrade is told only for the numbers listed).
    pub displays: Vec<(String, String)>,
    /// Business account (WABA) ids by phone number id, for the account webhooks (a tier told
    /// by `business_capability_update` only for the numbers listed).
    pub accounts: Vec<(String, String)>,
    /// The rules groups are kept by (Meta's Groups API unless a test says the seeds').
    pub group_limits: GroupLimits,
}

/// Faults injected into the send API, to exercise wagate's retries, and the fates of accepted
/// messages. Each is a share (0 to 1) of send requests, picked by a seeded hash of the
/// request's arrival number, so a run is reproducible.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answered 500 with Meta's transient error 131000, without being judged or taken.
    pub error_share: f64,
    /// The connection is closed without an answer, before the request is judged or taken.
    pub drop_share: f64,
    /// Answered only after `slow_ms` (judged and taken as usual).
    pub slow_share: f64,
    pub slow_ms: u64,
    /// Of the accepted: reported `failed` with 131026 (undeliverable) instead of delivered.
    pub failed_share: f64,
    /// Of the delivered: also reported `read`.
    pub read_share: f64,
}

/// What mock-meta did besides judging.
#[derive(Debug, Default)]
struct FaultCounts {
    errors: AtomicU64,
    dropped: AtomicU64,
    slow: AtomicU64,
    failed: AtomicU64,
    read: AtomicU64,
    /// Read marks taken on the messages endpoint.
    read_marks: AtomicU64,
}

struct State {
    /// Where mock-meta listens: its media URLs point here.
    addr: SocketAddr,
    media: Mutex<MediaStore>,
    /// Each number's register/deregister calls (Unix seconds).
    registrations: Mutex<std::collections::HashMap<String, Vec<u64>>>,
    oracle: Mutex<Oracle>,
    /// Each number's quality rating as Meta would report it (GREEN until a test says else).
    qualities: Mutex<std::collections::BTreeMap<String, String>>,
    next_id: AtomicU64,
    arrivals: AtomicU64,
    faults: Faults,
    counts: FaultCounts,
    webhooks: WebhookQueue,
    /// Meta's time: the system clock, or (set by `POST /mock/clock`) a test's manual one, in
    /// microseconds.
    manual_us: AtomicU64,
    displays: std::collections::HashMap<String, String>,
    accounts: std::collections::HashMap<String, String>,
    groups: Mutex<Groups>,
    /// Each accepted send's wamid and first body parameter by (number, person's digits), once
    /// a test asked for them (`POST /mock/record_sends`): what an operator looks up at Meta to
    /// settle a message left in flight. Off, it costs a load run nothing.
    sent: Mutex<Option<SentRecords>>,
}

type SentRecords = std::collections::HashMap<(String, String), Vec<(String, String)>>;

/// The text of a send's first body parameter (a template's), or its text body.
fn first_text(body: &[u8]) -> String {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let parameter = &parsed["template"]["components"][0]["parameters"][0]["text"];
    parameter
        .as_str()
        .or_else(|| parsed["text"]["body"].as_str())
        .unwrap_or("")
        .to_string()
}

impl State {
    fn now_us(&self) -> u64 {
        match self.manual_us.load(Ordering::Acquire) {
            0 => now_us(),
            manual => manual,
        }
    }

    /// Tells wagate of the tier upgrades due by now, by the webhook the upgrade rule names:
    /// `phone_number_quality_update` (naming the number by its display number) or
    /// `business_capability_update` (on the number's business account).
    fn tell_upgrades(&self, oracle: &mut Oracle) {
        let Some(announce) = oracle.upgrade_rule().map(|rule| rule.announce) else {
            return;
        };
        for (number, limit) in oracle.due_upgrades(self.now_us()) {
            let tier = crate::oracle::tier_name(limit);
            let (entry, field, value) = match announce {
                Announce::NumberQualityUpdate => {
                    let Some(display) = self.displays.get(&number) else {
                        continue;
                    };
                    let value = json!({ "display_phone_number": display, "event": "UPGRADE",
                                        "current_limit": tier });
                    ("0", "phone_number_quality_update", value)
                }
                Announce::BusinessCapabilityUpdate => {
                    let Some(account) = self.accounts.get(&number) else {
                        continue;
                    };
                    let value = json!({ "max_daily_conversations_per_business": tier });
                    (account.as_str(), "business_capability_update", value)
                }
            };
            self.webhooks.enqueue(
                json!({ "id": entry, "changes": [{ "field": field, "value": value }] }).to_string(),
            );
        }
    }
}

impl State {
    /// Tells wagate of a change to a group, as Meta does: on the number's business account,
    /// the number in the metadata, the change in the `groups` list.
    fn tell_group(&self, news: GroupNews) {
        let account = self.accounts.get(&news.number).map_or("0", String::as_str);
        let display = self.displays.get(&news.number).unwrap_or(&news.number);
        let value = json!({ "messaging_product": "whatsapp",
                            "metadata": { "display_phone_number": display,
                                          "phone_number_id": news.number },
                            "groups": [news.item] });
        self.webhooks.enqueue(
            json!({ "id": account, "changes": [{ "field": news.field, "value": value }] })
                .to_string(),
        );
    }
}

/// Webhooks on their way to wagate, counted until wagate answered them. Each is one `entry`
/// of Meta's webhook body, already serialized: senders join entries into a POST without
/// parsing or copying JSON values.
struct WebhookQueue {
    sender: mpsc::UnboundedSender<String>,
    pending: Arc<AtomicU64>,
}

impl WebhookQueue {
    fn enqueue(&self, entry: String) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.sender.send(entry).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }
}

/// Whether the `n`th event falls in `share` (a SplitMix64 hash of `n`, salted per fault).
fn picked(n: u64, salt: u64, share: f64) -> bool {
    let mut z = n.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 1_000_000) < (share * 1_000_000.0) as u64
}

/// A running mock-meta.
pub struct MockMeta {
    pub addr: SocketAddr,
    webhook_url: Arc<Mutex<Option<String>>>,
}

impl MockMeta {
    /// Where webhooks go from now on.
    pub fn set_webhook_url(&self, url: &str) {
        *self.webhook_url.lock().expect("webhook url") = Some(url.to_string());
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `X-Hub-Signature-256` as Meta computes it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    reply_text(status, body.to_string())
}

fn reply_text(status: StatusCode, json: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .expect("a valid response")
}

/// The `to` of a send the oracle took (so it parses).
fn recipient(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct To {
        #[serde(default)]
        to: String,
    }
    serde_json::from_slice::<To>(body).map_or_else(|_| String::new(), |t| t.to)
}

/// Whether a messages-endpoint body is a read mark (`"status":"read"`), not a send.
fn is_read_mark(body: &[u8]) -> bool {
    // Sends come by the ten thousand a second: only a body naming a status is parsed.
    body.windows(8).any(|w| w == b"\"status\"")
        && serde_json::from_slice::<Value>(body).is_ok_and(|json| json["status"] == "read")
}

/// A call on a group (`rest`: its id and what follows), as Meta's Groups API answers it.
fn group_call(state: &State, method: &Method, rest: &[&str], body: &[u8]) -> Response<Full<Bytes>> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let strings = |key: &str, field: Option<&str>| -> Vec<String> {
        json[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| match field {
                Some(field) => v[field].as_str(),
                None => v.as_str(),
            })
            .map(str::to_string)
            .collect()
    };
    let now = state.now_us() / 1_000_000;
    let mut groups = state.groups.lock().expect("groups");
    let (answer, news) = match (method, rest) {
        (&Method::GET, [id]) => (groups.info(id), Vec::new()),
        (&Method::DELETE, [id]) => groups
            .delete(id, now)
            .map_or((None, Vec::new()), |(a, n)| (Some(a), vec![n])),
        (&Method::GET, [id, "invite_link"]) => (groups.invite_link(id, false), Vec::new()),
        (&Method::POST, [id, "invite_link"]) => (groups.invite_link(id, true), Vec::new()),
        (&Method::GET, [id, "join_requests"]) => (groups.join_requests(id), Vec::new()),
        (&Method::POST | &Method::DELETE, [id, "join_requests"]) => {
            let requests = strings("join_requests", None);
            let approve = *method == Method::POST;
            groups
                .answer_join_requests(id, &requests, approve, now)
                .map_or((None, Vec::new()), |(a, n)| (Some(a), n))
        }
        (&Method::POST, [id]) => match groups.settings(id, &json, now) {
            Ok((answer, news)) => (Some(answer), vec![news]),
            Err(refused) => {
                drop(groups);
                return group_refused(&refused);
            }
        },
        (&Method::POST, [id, "participants"]) => {
            let people = strings("participants", Some("user"));
            match groups.add(id, &people, now) {
                Ok((answer, news)) => (Some(answer), vec![news]),
                Err(refused) => {
                    drop(groups);
                    return group_refused(&refused);
                }
            }
        }
        (&Method::DELETE, [id, "participants"]) => {
            let people = strings("participants", Some("user"));
            groups
                .remove(id, &people, now)
                .map_or((None, Vec::new()), |(a, n)| (Some(a), vec![n]))
        }
        _ => (None, Vec::new()),
    };
    drop(groups);
    for news in news {
        state.tell_group(news);
    }
    match answer {
        Some(answer) => reply(StatusCode::OK, &answer),
        None => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
    }
}

/// Whether a messages-endpoint body is a send to a group (`"recipient_type":"group"`).
fn is_group_send(body: &[u8]) -> bool {
    body.windows(16).any(|w| w == b"\"recipient_type\"")
        && serde_json::from_slice::<Value>(body).is_ok_and(|json| json["recipient_type"] == "group")
}

/// A send to a group, judged as Meta judges it, counted in the report like any send: taken, it
/// is `sent` to the group (priced in a group category) and then delivered to and read by
/// each participant (`recipient_participant_id`).
fn group_send(state: &State, number: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let now = state.now_us();
    let judged = state
        .groups
        .lock()
        .expect("groups")
        .send(number, &json, now / 1_000_000);
    state
        .oracle
        .lock()
        .expect("oracle")
        .count_send(now, judged.as_ref().err().copied());
    let participants = match judged {
        Ok(participants) => participants,
        Err(code) => return reply(StatusCode::BAD_REQUEST, &meta_error(code)),
    };
    let group = json["to"].as_str().unwrap_or("");
    let wamid = format!(
        "wamid.mock.{}",
        state.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let category = match (json["type"].as_str(), json["template"]["name"].as_str()) {
        (Some("template"), Some(name)) if name.contains("promo") => "group_marketing",
        (Some("template"), _) => "group_utility",
        _ => "group_service",
    };
    let kind = if category == "group_service" {
        "free_group_customer_service"
    } else {
        "regular"
    };
    let timestamp = now / 1_000_000;
    let sent = json!({ "statuses": [{ "id": wamid, "status": "sent", "timestamp": timestamp.to_string(),
        "recipient_id": group, "recipient_type": "group",
        "pricing": { "billable": kind == "regular", "pricing_model": "PMP", "type": kind, "category": category } }] });
    let mut entries = vec![sent];
    for status in ["delivered", "read"] {
        for person in &participants {
            entries.push(json!({ "statuses": [{ "id": wamid, "status": status,
                "timestamp": timestamp.to_string(), "recipient_id": group,
                "recipient_type": "group", "recipient_participant_id": person }] }));
        }
    }
    for fields in entries {
        let fields = fields.to_string();
        state
            .webhooks
            .enqueue(messages_entry(number, &fields[1..fields.len() - 1]));
    }
    reply(
        StatusCode::OK,
        &json!({ "messaging_product": "whatsapp", "contacts": [{ "input": group }],
                 "messages": [{ "id": wamid, "group_id": group }] }),
    )
}

fn group_refused(refused: &crate::mock_groups::Refused) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::BAD_REQUEST);
    reply(
        status,
        &json!({ "error": { "message": refused.message, "type": "OAuthException",
                            "code": refused.code, "fbtrace_id": "mock" } }),
    )
}

fn meta_error(code: u32) -> Value {
    json!({ "error": { "message": format!("(#{code}) rejected by mock-meta"),
                       "type": "OAuthException", "code": code, "fbtrace_id": "mock" } })
}

/// One webhook `entry`: a `messages` change of `number` with `value`'s fields (a JSON object
/// without its braces) besides the product and metadata.
fn messages_entry(number: &str, fields: &str) -> String {
    format!(
        r#"{{"id":"0","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"{number}","phone_number_id":"{number}"}},{fields}}}}}]}}"#
    )
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let query = request.uri().query().unwrap_or("").to_string();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    Ok(match (method.clone(), parts.as_slice()) {
        (Method::POST, ["mock", "record_sends"]) => {
            state
                .sent
                .lock()
                .expect("sent")
                .get_or_insert_with(Default::default);
            reply_text(StatusCode::OK, "{}".to_string())
        }
        (Method::GET, ["mock", "sent"]) => {
            let field = |name: &str| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or("")
                    .trim_start_matches("%2B")
                    .trim_start_matches('+')
                    .to_string()
            };
            let key = (field("number"), field("to"));
            let messages: Vec<Value> = state
                .sent
                .lock()
                .expect("sent")
                .as_ref()
                .and_then(|sent| sent.get(&key))
                .into_iter()
                .flatten()
                .map(|(id, text)| serde_json::json!({ "id": id, "text": text }))
                .collect();
            reply(StatusCode::OK, &serde_json::json!({ "messages": messages }))
        }
        (Method::GET, ["mock", "report"]) => {
            let report = state.oracle.lock().expect("oracle").report().clone();
            let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
            let faults = &state.counts;
            reply(
                StatusCode::OK,
                &json!({ "sends": report.sends, "accepted": report.accepted,
                         "violations": report.violation_count(),
                         "violations_by_code": report.violations.iter()
                             .map(|(code, n)| (code.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                         "duplicates": report.duplicates,
                         "webhooks_pending": state.webhooks.pending(),
                         "accepted_per_second": report.accepted_per_second(),
                         "injected": { "errors": count(&faults.errors), "dropped": count(&faults.dropped),
                                       "slow": count(&faults.slow) },
                         "statuses": { "failed": count(&faults.failed), "read": count(&faults.read) },
                         "read_marks": count(&faults.read_marks),
                         "media_files": state.media.lock().expect("media").count() }),
            )
        }
        (Method::POST, ["mock", "clock"]) => {
            // A test's manual clock: Meta's time from now on, and what comes due by it.
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match json["unix_secs"].as_u64() {
                Some(secs) if secs > 0 => {
                    state.manual_us.store(secs * 1_000_000, Ordering::Release);
                    state.tell_upgrades(&mut state.oracle.lock().expect("oracle"));
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                _ => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::POST, ["mock", "inbound"]) => {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (number, from) = (
                json["phone_number_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                json["from"].as_str().unwrap_or_default().to_string(),
            );
            state
                .oracle
                .lock()
                .expect("oracle")
                .inbound(&number, &from, state.now_us());
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            let fields = json!({
                "contacts": [{ "wa_id": from }],
                "messages": [{ "from": from, "id": format!("wamid.in.{id}"),
                               "timestamp": (state.now_us() / 1_000_000).to_string(),
                               "type": "text", "text": { "body": json["text"] } }]
            })
            .to_string();
            let fields = &fields[1..fields.len() - 1];
            state.webhooks.enqueue(messages_entry(&number, fields));
            reply(StatusCode::OK, &json!({ "success": true }))
        }
        (Method::GET, [_version, _waba, "message_templates"]) => {
            let oracle = state.oracle.lock().expect("oracle");
            let data: Vec<Value> = oracle
                .templates()
                .iter()
                .map(|(name, language, template)| {
                    json!({ "id": template_id(name, language),
                            "name": name, "language": language, "status": template.name(),
                            "category": "UTILITY", "parameter_format": "POSITIONAL",
                            "components": [{ "type": "BODY", "text": "Hello {{1}}",
                                             "example": { "body_text": [["Ana"]] } }] })
                })
                .collect();
            let count = data.len();
            reply(
                StatusCode::OK,
                &json!({ "data": data,
                         "summary": { "total_count": count, "message_template_count": count,
                                      "message_template_limit": 250,
                                      "are_translations_complete": true } }),
            )
        }
        (
            Method::POST,
            [_version, number, edge @ ("register" | "deregister" | "request_code" | "verify_code")],
        ) => {
            // Registration as Meta answers it: 10 register/deregister calls a number in 72 h.
            let counted = matches!(*edge, "register" | "deregister");
            let now = state.now_us() / 1_000_000;
            let mut calls = state.registrations.lock().expect("registrations");
            let recent = calls.entry((*number).to_string()).or_default();
            recent.retain(|&at| at + 72 * 3_600 > now);
            if counted && recent.len() >= 10 {
                reply(StatusCode::BAD_REQUEST, &meta_error(133_016))
            } else {
                if counted {
                    recent.push(now);
                }
                reply(StatusCode::OK, &json!({ "success": true }))
            }
        }
        (Method::POST, [_version, _waba, "message_templates"]) => {
            // Meta reviews a new template later: it is pending, and not sendable, until then.
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match (json["name"].as_str(), json["language"].as_str()) {
                (Some(name), Some(language)) => reply(
                    StatusCode::OK,
                    &json!({ "id": template_id(name, language), "status": "PENDING",
                             "category": json["category"] }),
                ),
                _ => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::GET, [_version, number])
            if state
                .qualities
                .lock()
                .expect("qualities")
                .contains_key(*number) =>
        {
            let quality = state.qualities.lock().expect("qualities")[*number].clone();
            reply(
                StatusCode::OK,
                &json!({ "id": number, "display_phone_number": format!("+1 555-{number}"),
                         "verified_name": "Mock Business", "quality_rating": quality,
                         "code_verification_status": "VERIFIED", "name_status": "APPROVED",
                         "messaging_limit_tier": "TIER_1K", "platform_type": "CLOUD_API",
                         "throughput": { "level": "STANDARD" } }),
            )
        }
        (Method::GET, [_version, _waba, "phone_numbers"]) => {
            let qualities = state.qualities.lock().expect("qualities");
            let data: Vec<Value> = qualities
                .iter()
                .map(|(id, quality)| json!({ "id": id, "quality_rating": quality }))
                .collect();
            reply(StatusCode::OK, &json!({ "data": data }))
        }
        (Method::POST, ["mock", "template_status"]) => {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (name, language) = (
                json["name"].as_str().unwrap_or_default(),
                json["language"].as_str().unwrap_or("en_US"),
            );
            match json["status"].as_str().and_then(TemplateState::parse) {
                Some(template) => {
                    state
                        .oracle
                        .lock()
                        .expect("oracle")
                        .set_template(name, language, template);
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                None => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::POST, ["mock", "number_quality"]) => {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match (
                json["phone_number_id"].as_str(),
                json["quality_rating"].as_str(),
            ) {
                (Some(number), Some(quality)) => {
                    state
                        .qualities
                        .lock()
                        .expect("qualities")
                        .insert(number.to_string(), quality.to_string());
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                _ => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::POST, [_version, number, "media"]) => {
            // Meta's object ids are long and never another object's: so are these.
            let id = MEDIA_IDS_FROM + state.next_id.fetch_add(1, Ordering::Relaxed);
            match media::upload(&content_type, body).await {
                Ok(file) => match state.media.lock().expect("media").keep(id, number, file) {
                    Ok(()) => reply(StatusCode::OK, &json!({ "id": id.to_string() })),
                    Err(code) => reply(StatusCode::BAD_REQUEST, &meta_error(code)),
                },
                Err(code) => reply(StatusCode::BAD_REQUEST, &meta_error(code)),
            }
        }
        (Method::GET, ["mock", "media", id, "file"]) => {
            let store = state.media.lock().expect("media");
            match store.file(id) {
                Some(_) if !authorized => reply(StatusCode::UNAUTHORIZED, &meta_error(190)),
                Some(file) => Response::builder()
                    .header(hyper::header::CONTENT_TYPE, file.mime.as_str())
                    .body(Full::new(file.bytes.clone()))
                    .unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, &meta_error(1))),
                None => reply(StatusCode::NOT_FOUND, &meta_error(100)),
            }
        }
        (_, [_version, id, ..]) if state.groups.lock().expect("groups").is_group(id) => {
            group_call(&state, &method, &parts[1..], &body)
        }
        (Method::POST, [_version, number, "groups"]) => {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let now = state.now_us() / 1_000_000;
            let created = state
                .groups
                .lock()
                .expect("groups")
                .create(number, &json, now);
            match created {
                Ok((answer, news)) => {
                    state.tell_group(news);
                    reply(StatusCode::OK, &answer)
                }
                Err(refused) => group_refused(&refused),
            }
        }
        (Method::GET, ["mock", "groups"]) => {
            // What Meta keeps of each group: for tests, which cannot read Meta's webhooks.
            reply(StatusCode::OK, &state.groups.lock().expect("groups").all())
        }
        (Method::POST, ["mock", "group_join"]) => {
            // A person taps a group's invite link (a test's stand-in for the WhatsApp user).
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (link, person) = (
                json["invite_link"].as_str().unwrap_or(""),
                json["wa_id"].as_str().unwrap_or(""),
            );
            let now = state.now_us() / 1_000_000;
            let tapped = state
                .groups
                .lock()
                .expect("groups")
                .tap_link(link, person, now);
            match tapped {
                Ok(news) => {
                    state.tell_group(news);
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                Err(refused) => group_refused(&refused),
            }
        }
        (Method::POST, ["mock", "group_leave"]) => {
            // A participant leaves the group (anyone may, at any time).
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let now = state.now_us() / 1_000_000;
            let left = state.groups.lock().expect("groups").leave(
                json["group_id"].as_str().unwrap_or(""),
                json["wa_id"].as_str().unwrap_or(""),
                now,
            );
            match left {
                Some(news) => {
                    state.tell_group(news);
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                None => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::POST, ["mock", "group_message"]) => {
            // A participant writes in the group: its service window opens, and wagate hears
            // of the message as Meta tells it (the group's id on the message).
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (group, from) = (
                json["group_id"].as_str().unwrap_or("").to_string(),
                json["from"].as_str().unwrap_or("").to_string(),
            );
            let now = state.now_us() / 1_000_000;
            let number = state
                .groups
                .lock()
                .expect("groups")
                .inbound(&group, &from, now);
            match number {
                Some(number) => {
                    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
                    let wamid = format!("wamid.in.{id}");
                    let fields = json!({
                        "contacts": [{ "wa_id": from }],
                        "messages": [{ "from": from, "group_id": group, "id": wamid,
                                       "timestamp": now.to_string(), "type": "text",
                                       "text": { "body": json["text"] } }]
                    })
                    .to_string();
                    let fields = &fields[1..fields.len() - 1];
                    state.webhooks.enqueue(messages_entry(&number, fields));
                    reply(StatusCode::OK, &json!({ "success": true, "id": wamid }))
                }
                None => reply(StatusCode::BAD_REQUEST, &meta_error(100)),
            }
        }
        (Method::POST, [_version, number, "messages"]) if is_group_send(&body) => {
            group_send(&state, number, &body)
        }
        (Method::GET | Method::DELETE, [_version, id])
            if state.media.lock().expect("media").file(id).is_some() =>
        {
            let mut store = state.media.lock().expect("media");
            let number = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("phone_number_id="));
            match store.file(id) {
                Some(file) if number.is_some_and(|n| n != file.number) => {
                    reply(StatusCode::BAD_REQUEST, &meta_error(100))
                }
                Some(_) if method == Method::DELETE => {
                    store.delete(id);
                    reply(StatusCode::OK, &json!({ "success": true }))
                }
                Some(file) => reply(
                    StatusCode::OK,
                    &json!({ "messaging_product": "whatsapp",
                             "url": format!("http://{}/mock/media/{id}/file", state.addr),
                             "mime_type": file.mime, "sha256": file.sha256,
                             "file_size": file.bytes.len(), "id": id }),
                ),
                None => reply(StatusCode::NOT_FOUND, &meta_error(100)),
            }
        }
        (Method::POST, [_version, _number, "messages"]) if is_read_mark(&body) => {
            // A read mark (and typing indicator) sends nothing: no rule of Meta's judges it.
            state.counts.read_marks.fetch_add(1, Ordering::Relaxed);
            reply(StatusCode::OK, &json!({ "success": true }))
        }
        (Method::POST, [_version, number, "messages"]) => {
            let arrival = state.arrivals.fetch_add(1, Ordering::Relaxed);
            let faults = &state.faults;
            if picked(arrival, 1, faults.drop_share) {
                state.counts.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(std::io::Error::other("mock-meta drops this connection"));
            }
            if picked(arrival, 2, faults.error_share) {
                state.counts.errors.fetch_add(1, Ordering::Relaxed);
                return Ok(reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &meta_error(131_000),
                ));
            }
            if picked(arrival, 3, faults.slow_share) {
                state.counts.slow.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(faults.slow_ms)).await;
            }
            let verdict = {
                let mut oracle = state.oracle.lock().expect("oracle");
                state.tell_upgrades(&mut oracle);
                oracle.send(number, &body, state.now_us())
            };
            match verdict {
                // The tier limit is Meta's to enforce later (a restriction): the send is taken.
                Verdict::Accepted | Verdict::Violation(0) => {
                    let wamid = format!(
                        "wamid.mock.{}",
                        state.next_id.fetch_add(1, Ordering::Relaxed)
                    );
                    let to = recipient(&body);
                    if let Some(sent) = state.sent.lock().expect("sent").as_mut() {
                        let person = to.trim_start_matches('+').to_string();
                        sent.entry((number.to_string(), person))
                            .or_default()
                            .push((wamid.clone(), first_text(&body)));
                    }
                    report_fate(&state, number, &wamid, &to, arrival);
                    let (input, wa_id) = (
                        Value::from(to.as_str()),
                        Value::from(to.trim_start_matches('+')),
                    );
                    reply_text(
                        StatusCode::OK,
                        format!(
                            r#"{{"messaging_product":"whatsapp","contacts":[{{"input":{input},"wa_id":{wa_id}}}],"messages":[{{"id":"{wamid}"}}]}}"#
                        ),
                    )
                }
                Verdict::Violation(code) => reply(StatusCode::BAD_REQUEST, &meta_error(code)),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, &meta_error(100)),
    })
}

/// Where mock-meta's media ids start.
const MEDIA_IDS_FROM: u64 = 900_000_000_000_000;

/// A template's id at Meta: stable for its name and language.
fn template_id(name: &str, language: &str) -> String {
    let digest = Sha256::digest(format!("{name}/{language}").as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(id) >> 12).to_string()
}

/// Sends the statuses of a message taken (the `arrival`th request): sent, then delivered
/// (sometimes read), or failed with 131026, as the faults pick.
fn report_fate(state: &State, number: &str, wamid: &str, to: &str, arrival: u64) {
    let faults = &state.faults;
    let fates: &[&str] = if picked(arrival, 4, faults.failed_share) {
        state.counts.failed.fetch_add(1, Ordering::Relaxed);
        &["sent", "failed"]
    } else if picked(arrival, 5, faults.read_share) {
        state.counts.read.fetch_add(1, Ordering::Relaxed);
        &["sent", "delivered", "read"]
    } else {
        &["sent", "delivered"]
    };
    let timestamp = state.now_us() / 1_000_000;
    let recipient = to.trim_start_matches('+');
    for status in fates {
        let errors = if *status == "failed" {
            r#","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"mock-meta: the person cannot be reached"}}]"#
        } else {
            ""
        };
        // wamid, number and recipient are mock-meta's own digits and dots: nothing to escape.
        let fields = format!(
            r#""statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{timestamp}","recipient_id":"{recipient}"{errors}}}]"#
        );
        state.webhooks.enqueue(messages_entry(number, &fields));
    }
}

/// Entries (one change each) per webhook POST at most.
const WEBHOOK_BATCH: usize = 500;

/// POSTs in flight to wagate at once: Meta delivers webhooks concurrently, and one sender
/// alone falls behind a dispatch run's statuses.
const WEBHOOK_SENDERS: usize = 8;

/// One of the webhook senders: takes what is waiting (up to a batch), POSTs it signed, and
/// drops it while no URL is known.
async fn send_webhooks(
    url: Arc<Mutex<Option<String>>>,
    secret: Arc<str>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
    pending: Arc<AtomicU64>,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    loop {
        let mut entries = Vec::new();
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            entries.push(first);
            // Like Meta, many changes share one POST when they come in quick succession.
            while entries.len() < WEBHOOK_BATCH {
                let Ok(more) = queue.try_recv() else { break };
                entries.push(more);
            }
        }
        let target = url.lock().expect("webhook url").clone();
        if let Some(url) = target {
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{}]}}"#,
                entries.join(",")
            );
            let request = Request::post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign(&secret, body.as_bytes()))
                .body(Full::new(Bytes::from(body)));
            if let Ok(request) = request {
                if let Ok(answer) = client.request(request).await {
                    let _ = answer.into_body().collect().await;
                }
            }
        }
        pending.fetch_sub(entries.len() as u64, Ordering::AcqRel);
    }
}

/// Starts mock-meta on the current tokio runtime.
pub async fn start(config: MockMetaConfig) -> std::io::Result<MockMeta> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let mut oracle = Oracle::new(config.rules.clone());
    for (name, language) in &config.templates {
        oracle.set_template(name, language, TemplateState::Approved);
    }
    let webhook_url = Arc::new(Mutex::new(config.webhook_url.clone()));
    let (sender, queue) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let secret: Arc<str> = config.app_secret.as_str().into();
    for _ in 0..WEBHOOK_SENDERS {
        tokio::spawn(send_webhooks(
            webhook_url.clone(),
            secret.clone(),
            queue.clone(),
            pending.clone(),
        ));
    }
    let qualities = config
        .rules
        .numbers
        .keys()
        .map(|number| (number.clone(), "GREEN".to_string()))
        .collect();
    let state = Arc::new(State {
        addr,
        media: Mutex::new(MediaStore::default()),
        registrations: Mutex::default(),
        oracle: Mutex::new(oracle),
        qualities: Mutex::new(qualities),
        next_id: AtomicU64::new(0),
        arrivals: AtomicU64::new(0),
        faults: config.faults.clone(),
        counts: FaultCounts::default(),
        webhooks: WebhookQueue { sender, pending },
        manual_us: AtomicU64::new(0),
        displays: config.displays.iter().cloned().collect(),
        accounts: config.accounts.iter().cloned().collect(),
        groups: Mutex::new(Groups::new(config.group_limits)),
        sent: Mutex::new(None),
    });
    serve_http1(listener, state, handle);
    Ok(MockMeta { addr, webhook_url })
}
