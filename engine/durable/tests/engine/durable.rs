//! The durable engine in-process: acceptance written before the answer, idempotent retries
//! (also across a restart), expiry of idempotency records, restoring every piece of state on
//! reopen, dispatch, and the storage failures. RocksDB on disk throughout.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wagate_durable::admin::AdminError;
use wagate_durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate_durable::message::{DispatchStatus, StoredMessage};
use wagate_durable::submission::Submission;
use wagate_durable::wagate::OpenError;
use wagate_durable::{SubmitError, SubmitResult, Wagate, WagateConfig};
use wagate_rules::contact_events::InboundContent;
use wagate_rules::{
    ConsentChange, ConsentSource, DeferReason, EngineConfig, InboundMessage, ManualClock, Message,
    Msisdn, PortfolioId, Profile, Quality, SendRequest,
};
use wagate_store::StoreError;
use wagate_test_support::{
    order_update, order_update_to, registration, ACCOUNT, DAY, NUMBER, TO_APPROVED,
};

/// An upstream that remembers what it was sent (the crash test uses a real one over TCP).
#[derive(Default)]
struct Recorder {
    sent: Mutex<HashMap<u64, u32>>,
    fail_next: AtomicU32,
    /// Meta's code for refusing the next send for good (0: none).
    refuse_next: AtomicU32,
}

impl Upstream for Recorder {
    fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
        let code = self.refuse_next.swap(0, Ordering::SeqCst);
        if code != 0 {
            return Err(UpstreamError::Refused {
                code,
                reason: format!("HTTP 400, code {code}: refused"),
            });
        }
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(UpstreamError::Retryable("503 from upstream".into()));
        }
        *self.sent.lock().unwrap().entry(message.id).or_default() += 1;
        Ok(format!("wamid.{}", message.id))
    }

    fn reconcile(&self, message: &StoredMessage) -> Reconciled {
        match self.sent.lock().unwrap().contains_key(&message.id) {
            true => Reconciled::Delivered(format!("wamid.{}", message.id)),
            false => Reconciled::NotDelivered,
        }
    }
}

impl Recorder {
    fn count(&self, id: u64) -> u32 {
        self.sent.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

fn data_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wagate-durable-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Harness {
    dir: PathBuf,
    clock: ManualClock,
    upstream: Arc<Recorder>,
    profile: Profile,
    schedule_horizon_secs: u32,
}

impl Harness {
    fn new(profile: Profile) -> Harness {
        Harness {
            dir: data_dir(),
            clock: ManualClock::at_2026(),
            upstream: Arc::new(Recorder::default()),
            profile,
            schedule_horizon_secs: 60,
        }
    }

    fn config(&self) -> WagateConfig {
        WagateConfig {
            engine: EngineConfig {
                shards: 2,
                schedule_horizon_secs: self.schedule_horizon_secs,
                ..EngineConfig::new(self.profile.clone())
            },
            data_dir: self.dir.clone(),
            ..WagateConfig::default()
        }
    }

    fn open(&self) -> Wagate {
        Wagate::open(
            self.config(),
            Arc::new(self.clock.clone()),
            self.upstream.clone(),
        )
        .unwrap()
    }

    /// A fresh engine with a number, an approved template and opted-in people.
    fn start(&self, people: u64) -> Wagate {
        let wagate = self.open();
        wagate
            .register_number(registration(NUMBER, ACCOUNT, None))
            .unwrap();
        wagate.submit_template(order_update(ACCOUNT)).unwrap();
        for status in TO_APPROVED {
            wagate
                .set_template_status(ACCOUNT, "order_update", "en_US", status)
                .unwrap();
        }
        for i in 0..people {
            wagate
                .consent(NUMBER, person(i), ConsentChange::OptIn, ConsentSource::Api)
                .unwrap()
                .unwrap();
        }
        wagate
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).unwrap()
}

fn template_to(i: u64, key: Option<&str>) -> Submission {
    Submission {
        request: order_update_to(NUMBER, person(i)),
        payload: format!(r#"{{"to":"+{}","type":"template"}}"#, person(i).digits()).into_bytes(),
        idempotency_key: key.map(str::to_string),
        queue_when_deferred: false,
    }
}

fn accepted_id(result: &Result<SubmitResult, SubmitError>) -> (u64, bool) {
    match result {
        Ok(SubmitResult::Accepted {
            message_id,
            replayed,
            ..
        }) => (*message_id, *replayed),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn an_accepted_message_is_stored_then_dispatched_once() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1);
    let (id, replayed) = accepted_id(&wagate.submit(template_to(0, None)));
    assert!(!replayed);
    let stored = wagate
        .message(id)
        .unwrap()
        .expect("durable before the answer");
    assert_eq!(stored.to, person(0));
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    assert_eq!(harness.upstream.count(id), 1);
    let settled = wagate.message(id).unwrap().unwrap();
    assert_eq!(
        (settled.status, settled.upstream.as_str()),
        (DispatchStatus::Sent, format!("wamid.{id}").as_str())
    );
    wagate.shutdown();
}

#[test]
fn a_repeat_of_a_key_returns_the_original_answer_and_sends_nothing_new() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(2);
    let (first, _) = accepted_id(&wagate.submit(template_to(0, Some("order-17"))));
    let (again, replayed) = accepted_id(&wagate.submit(template_to(0, Some("order-17"))));
    assert_eq!((again, replayed), (first, true));
    // The same key with another body is refused and changes nothing.
    let reused = wagate.submit(template_to(1, Some("order-17")));
    assert_eq!(reused, Err(SubmitError::KeyReused("order-17".into())));
    assert_eq!(wagate.usage(NUMBER).unwrap().used_24h, 1);
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    assert_eq!(harness.upstream.count(first), 1);
    assert_eq!(harness.upstream.sent.lock().unwrap().len(), 1);
    // Refusals are remembered too.
    let refused = wagate.submit(template_to(9, Some("never-opted-in")));
    let replay = wagate.submit(template_to(9, Some("never-opted-in")));
    assert!(matches!(
        refused,
        Ok(SubmitResult::Refused {
            replayed: false,
            ..
        })
    ));
    assert!(matches!(
        replay,
        Ok(SubmitResult::Refused { replayed: true, .. })
    ));
    wagate.shutdown();
}

#[test]
fn a_repeat_after_a_restart_returns_the_original_answer() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1);
    let (first, _) = accepted_id(&wagate.submit(template_to(0, Some("k-1"))));
    wagate.shutdown();
    let wagate = harness.open();
    let (again, replayed) = accepted_id(&wagate.submit(template_to(0, Some("k-1"))));
    assert_eq!((again, replayed), (first, true));
    let (fresh, _) = accepted_id(&wagate.submit(template_to(0, Some("k-2"))));
    assert!(fresh > first, "ids never repeat across restarts");
    wagate.shutdown();
}

#[test]
fn idempotency_records_expire_after_the_retention_and_are_purged() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1);
    let (first, _) = accepted_id(&wagate.submit(template_to(0, Some("k"))));
    harness.clock.advance_secs(DAY - 1);
    assert_eq!(
        accepted_id(&wagate.submit(template_to(0, Some("k")))),
        (first, true)
    );
    harness.clock.advance_secs(1);
    let (second, replayed) = accepted_id(&wagate.submit(template_to(0, Some("k"))));
    assert!(
        second != first && !replayed,
        "after 24 h the key is free again"
    );
    harness.clock.advance_secs(DAY);
    wagate.purge_expired().unwrap();
    wagate.shutdown();
    let store = wagate_store::RocksStore::open(&harness.dir).unwrap();
    let key = wagate_store::keys::idempotency_key(NUMBER.0, "k");
    use wagate_store::Store;
    assert_eq!(
        store.get(wagate_store::Family::Idempotency, &key).unwrap(),
        None,
        "physically gone"
    );
}

#[test]
fn a_restart_restores_windows_consent_counts_sketches_templates_tiers_and_ledger() {
    let harness = Harness::new(Profile::whatsapp_2025());
    let wagate = harness.start(300);
    wagate.verify_business(PortfolioId(1)).unwrap();
    wagate.set_number_quality(NUMBER, Quality::Green).unwrap();
    wagate
        .inbound(InboundMessage {
            number: NUMBER,
            from: person(1),
            content: InboundContent::Text("STOP".into()),
            referral: false,
        })
        .unwrap()
        .unwrap();
    // A STOP opens a window too; a day later it no longer covers Ben.
    harness.clock.advance_secs(DAY + 1);
    wagate
        .inbound(InboundMessage {
            number: NUMBER,
            from: person(500),
            content: InboundContent::Text("hi".into()),
            referral: false,
        })
        .unwrap()
        .unwrap();
    let results = wagate.submit_many((0..300).map(|i| template_to(i, None)).collect());
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Ok(SubmitResult::Accepted { .. })))
        .count();
    assert_eq!(accepted, 299, "all but the one who said STOP");
    wagate
        .set_template_quality(ACCOUNT, "order_update", "en_US", Quality::Red)
        .unwrap();
    let before = wagate.usage(NUMBER).unwrap();
    let ledger_before = wagate.ledger().unwrap();
    wagate.shutdown();

    let wagate = harness.open();
    let after = wagate.usage(NUMBER).unwrap();
    assert_eq!(after, before, "tier, exact count, both sketches, quality");
    assert_eq!(after.tier, "TIER_2K");
    assert_eq!(wagate.ledger().unwrap().rows(), ledger_before.rows());
    // Template paused by the red quality before the restart; Ana in her window; Ben opted out.
    let paused = wagate.submit(template_to(5, None));
    assert!(
        matches!(
            paused,
            Ok(SubmitResult::Refused {
                code: Some(132_015),
                ..
            })
        ),
        "{paused:?}"
    );
    let reply = wagate.submit(Submission {
        request: SendRequest {
            number: NUMBER,
            to: person(500),
            message: Message::text("hello"),
            options: Default::default(),
        },
        payload: b"{}".to_vec(),
        idempotency_key: None,
        queue_when_deferred: false,
    });
    assert!(
        matches!(reply, Ok(SubmitResult::Accepted { .. })),
        "{reply:?}"
    );
    harness.clock.advance_secs(3 * 3_600);
    let stopped = wagate.submit(template_to(1, None));
    assert!(
        matches!(stopped, Ok(SubmitResult::Refused { ref name, .. }) if name == "opted_out"),
        "{stopped:?}"
    );
    wagate.shutdown();
}

#[test]
fn counted_recipients_still_expire_after_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1_001);
    let results = wagate.submit_many((0..1_001).map(|i| template_to(i, None)).collect());
    // Two shards decide in parallel: exactly one of the 1,001 waits, whichever came last.
    let waiting: Vec<u64> = (0..1_001u64)
        .filter(|i| {
            matches!(
                results[*i as usize],
                Ok(SubmitResult::Deferred {
                    reason: DeferReason::TierLimit,
                    ..
                })
            )
        })
        .collect();
    assert_eq!(waiting.len(), 1);
    let last = waiting[0];
    wagate.shutdown();
    let wagate = harness.open();
    assert_eq!(wagate.usage(NUMBER).unwrap().used_24h, 1_000);
    assert!(matches!(
        wagate.submit(template_to(last, None)),
        Ok(SubmitResult::Deferred { .. })
    ));
    harness.clock.advance_secs(DAY);
    assert!(matches!(
        wagate.submit(template_to(last, None)),
        Ok(SubmitResult::Accepted { .. })
    ));
    assert_eq!(wagate.usage(NUMBER).unwrap().used_24h, 1);
    wagate.shutdown();
}

#[test]
fn undispatched_messages_are_sent_after_a_restart_and_retries_back_off() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(4);
    // One message a second: the second and third slots lie in the future of the frozen clock,
    // so those two can only be dispatched after the restart.
    wagate.set_throughput(NUMBER, 1).unwrap();
    let now = wagate.now();
    let results = wagate.submit_many((0..3).map(|i| template_to(i, None)).collect());
    let ids: Vec<u64> = results.iter().map(|r| accepted_id(r).0).collect();
    let future: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Ok(SubmitResult::Accepted {
                message_id,
                accepted,
                ..
            }) if accepted.send_at > now => Some(*message_id),
            _ => None,
        })
        .collect();
    assert_eq!(future.len(), 2);
    wagate.shutdown();
    for id in &future {
        assert_eq!(harness.upstream.count(*id), 0);
    }
    let wagate = harness.open();
    harness.clock.advance_secs(3);
    wagate.wait_dispatched(Duration::from_secs(10));
    for id in &ids {
        assert_eq!(harness.upstream.count(*id), 1, "message {id}");
        assert_eq!(
            wagate.message(*id).unwrap().unwrap().status,
            DispatchStatus::Sent
        );
    }
    // A retryable upstream failure: the message waits (backing off) and then goes once.
    harness.upstream.fail_next.store(1, Ordering::SeqCst);
    let (id, _) = accepted_id(&wagate.submit(template_to(3, None)));
    harness.clock.advance_secs(1);
    let view = wagate.wait_dispatched(Duration::from_secs(10));
    assert_eq!((view.retried, view.queued), (1, 1));
    let waiting = wagate.message(id).unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.attempts),
        (DispatchStatus::Pending, 1)
    );
    harness.clock.advance_secs(10);
    wagate.wait_dispatched(Duration::from_secs(10));
    assert_eq!(harness.upstream.count(id), 1);
    wagate.shutdown();
}

#[test]
fn queued_sends_survive_a_restart_and_go_once_each_when_their_time_comes() {
    let mut harness = Harness::new(Profile::whatsapp_2021());
    harness.schedule_horizon_secs = 1;
    let wagate = harness.start(6);
    // One a second with a one-second horizon: two slots now, the rest must wait in the queue.
    wagate.set_throughput(NUMBER, 1).unwrap();
    let queue = |i| Submission {
        queue_when_deferred: true,
        ..template_to(i, None)
    };
    let results = wagate.submit_many((0..6).map(queue).collect());
    let mut ids = Vec::new();
    let mut queued = Vec::new();
    for result in &results {
        match result {
            Ok(SubmitResult::Accepted { message_id, .. }) => ids.push(*message_id),
            Ok(SubmitResult::Queued { message_id, .. }) => queued.push(*message_id),
            other => panic!("expected accepted or queued, got {other:?}"),
        }
    }
    assert!(queued.len() >= 3, "queued {queued:?}");
    assert_eq!(wagate.queued_count(), queued.len());
    // Nothing is due yet: the releaser finds nothing.
    assert_eq!(wagate.release_due(100).unwrap(), 0);
    wagate.shutdown();

    let wagate = harness.open();
    assert_eq!(wagate.queued_count(), queued.len());
    for id in &queued {
        assert_eq!(wagate.queued(*id).unwrap().map(|r| r.id), Some(*id));
    }
    for _ in 0..20 {
        if wagate.queued_count() == 0 {
            break;
        }
        harness.clock.advance_secs(1);
        wagate.release_due(100).unwrap();
    }
    assert_eq!(wagate.queued_count(), 0);
    harness.clock.advance_secs(10);
    wagate.wait_dispatched(Duration::from_secs(10));
    for id in ids.iter().chain(&queued) {
        assert_eq!(harness.upstream.count(*id), 1, "message {id}");
        assert!(wagate.queued(*id).unwrap().is_none());
    }
    wagate.shutdown();
}

#[test]
fn a_locked_or_unopenable_data_directory_is_a_clear_error() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let first = harness.open();
    let second = Wagate::open(
        harness.config(),
        Arc::new(harness.clock.clone()),
        harness.upstream.clone(),
    );
    let error = second.err().expect("the directory is in use");
    assert!(
        matches!(error, OpenError::Store(StoreError::Locked { .. })),
        "{error}"
    );
    first.shutdown();
    let file = harness.dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let config = WagateConfig {
        data_dir: file,
        ..harness.config()
    };
    let error = Wagate::open(
        config,
        Arc::new(harness.clock.clone()),
        harness.upstream.clone(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(error, OpenError::Store(StoreError::Open { .. })),
        "{error}"
    );
}

#[test]
fn admin_changes_are_refused_clearly_and_change_nothing() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(0);
    let error = wagate.set_tier(NUMBER, "TIER_7").unwrap_err();
    assert!(matches!(error, AdminError::Registry(_)), "{error}");
    assert_eq!(wagate.usage(NUMBER).unwrap().tier, "TIER_1K");
    wagate.shutdown();
}

/// Meta's `message_template_status_update` for `order_update`: `event`.
fn order_update_is(event: &str) -> Vec<wagate_cloud_api::webhooks::events::WebhookEvent> {
    let value = format!(
        r#"{{"event":"{event}","message_template_id":1,"message_template_name":"order_update","message_template_language":"en_US"}}"#
    );
    webhook("message_template_status_update", &value)
}

fn webhook(field: &str, value: &str) -> Vec<wagate_cloud_api::webhooks::events::WebhookEvent> {
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{}","changes":[{{"field":"{field}","value":{value}}}]}}]}}"#,
        ACCOUNT.0
    );
    let signature = wagate_cloud_api::webhooks::signature::sign(b"app-secret", body.as_bytes());
    wagate_cloud_api::webhooks::signature::verify(b"app-secret", body.as_bytes(), Some(&signature))
        .unwrap();
    wagate_cloud_api::webhooks::events::parse_webhook(body.as_bytes()).unwrap()
}

#[test]
fn webhook_events_apply_once_and_feed_the_rules() {
    let harness = Harness::new(Profile::whatsapp_2025());
    let wagate = harness.start(2);
    let metadata = format!(
        r#""metadata":{{"display_phone_number":"15550783881","phone_number_id":"{}"}}"#,
        NUMBER.0
    );
    let inbound = webhook(
        "messages",
        &format!(
            r#"{{{metadata},"messages":[{{"from":"{}","id":"wamid.in.1","type":"text","text":{{"body":"hi"}}}}]}}"#,
            person(0).digits()
        ),
    );
    let report = wagate.apply_webhook(inbound.clone()).unwrap();
    assert_eq!((report.applied, report.repeats), (1, 0));
    let opened = wagate.now();
    harness.clock.advance_secs(2 * 3_600);
    // Meta's retry of the same delivery: not applied again, so the window is not extended.
    assert_eq!(wagate.apply_webhook(inbound).unwrap().repeats, 1);
    harness.clock.advance_secs(22 * 3_600);
    let reply = wagate.submit(Submission {
        request: SendRequest {
            number: NUMBER,
            to: person(0),
            message: Message::text("still open?"),
            options: Default::default(),
        },
        payload: b"{}".to_vec(),
        idempotency_key: None,
        queue_when_deferred: false,
    });
    assert!(
        matches!(
            reply,
            Ok(SubmitResult::Refused {
                code: Some(131_047),
                ..
            })
        ),
        "window from {opened}: {reply:?}"
    );

    let failed = webhook(
        "messages",
        &format!(
            r#"{{{metadata},"statuses":[{{"id":"wamid.out.7","status":"failed","recipient_id":"{}","errors":[{{"code":131026}}]}}]}}"#,
            person(1).digits()
        ),
    );
    let report = wagate.apply_webhook(failed).unwrap();
    assert_eq!(
        report.failure_effects,
        vec![wagate_rules::contact_events::FailureEffect::Unreachable]
    );
    assert!(matches!(
        wagate.submit(template_to(1, None)),
        Ok(SubmitResult::Refused {
            code: Some(131_026),
            ..
        })
    ));

    let paused = webhook(
        "message_template_quality_update",
        r#"{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":1,"message_template_name":"order_update","message_template_language":"en_US"}"#,
    );
    assert_eq!(wagate.apply_webhook(paused).unwrap().applied, 1);
    assert!(matches!(
        wagate.submit(template_to(0, None)),
        Ok(SubmitResult::Refused {
            code: Some(132_015),
            ..
        })
    ));
    wagate.shutdown();
}

/// A template send whose body names its template, as Meta's body does.
fn named_template_to(i: u64, name: &str) -> Submission {
    let body = format!(
        r#"{{"messaging_product":"whatsapp","to":"+{}","type":"template","template":{{"name":"{name}","language":{{"code":"en_US"}},"components":[{{"type":"body","parameters":[{{"type":"text","text":"Ana"}}]}}]}}}}"#,
        person(i).digits()
    );
    Submission::from_send_body(NUMBER, body.into_bytes(), None, false)
        .unwrap()
        .submission
}

/// Submits `send`, which Meta refuses with `code`, and waits until the refusal is settled.
fn refused_by_meta(harness: &Harness, wagate: &Wagate, send: Submission, code: u32) {
    // What was accepted before goes first, so that the refusal meets this send.
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    harness.upstream.refuse_next.store(code, Ordering::SeqCst);
    let (id, _) = accepted_id(&wagate.submit(send));
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    let failed = wagate.message(id).unwrap().unwrap();
    assert_eq!(failed.status, DispatchStatus::Failed, "{failed:?}");
    assert!(failed.upstream.contains(&code.to_string()), "{failed:?}");
}

#[test]
fn metas_synchronous_refusals_change_the_state_they_speak_of_across_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(6);
    wagate
        .submit_template(wagate_rules::TemplateDefinition::new(
            ACCOUNT,
            "promo",
            "en_US",
            wagate_rules::Category::Marketing,
            "Sale for {{1}}",
        ))
        .unwrap();
    for name in ["promo", "offer"] {
        if name == "offer" {
            wagate
                .submit_template(wagate_rules::TemplateDefinition::new(
                    ACCOUNT,
                    "offer",
                    "en_US",
                    wagate_rules::Category::Marketing,
                    "Offer for {{1}}",
                ))
                .unwrap();
        }
        for status in TO_APPROVED {
            wagate
                .set_template_status(ACCOUNT, name, "en_US", status)
                .unwrap();
        }
    }

    // 131049: WhatsApp's marketing limit for this person: marketing to them waits; to others
    // and utility to them still go.
    refused_by_meta(&harness, &wagate, named_template_to(0, "promo"), 131_049);
    assert!(
        matches!(
            wagate.submit(named_template_to(0, "promo")),
            Ok(SubmitResult::Deferred {
                reason: DeferReason::MarketingCooldown,
                ..
            })
        ),
        "the person's cool-down"
    );
    accepted_id(&wagate.submit(named_template_to(1, "promo")));
    accepted_id(&wagate.submit(named_template_to(0, "order_update")));

    // 132015: the template is paused, whatever the profile's tables would allow.
    refused_by_meta(&harness, &wagate, named_template_to(2, "promo"), 132_015);
    let refused_code = |result: Result<SubmitResult, SubmitError>| match result {
        Ok(SubmitResult::Refused { code, .. }) => code,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(
        refused_code(wagate.submit(named_template_to(3, "promo"))),
        Some(132_015)
    );

    // 132016: disabled.
    refused_by_meta(
        &harness,
        &wagate,
        named_template_to(3, "order_update"),
        132_016,
    );
    assert_eq!(
        refused_code(wagate.submit(named_template_to(4, "order_update"))),
        Some(132_016)
    );

    // 368 (and 131048): the number is restricted: business-initiated sends wait.
    let before = wagate.usage(NUMBER).unwrap().restricted_until;
    assert_eq!(before, None);
    wagate
        .submit_template(wagate_rules::TemplateDefinition::new(
            ACCOUNT,
            "notice",
            "en_US",
            wagate_rules::Category::Utility,
            "Notice {{1}}",
        ))
        .unwrap();
    for status in TO_APPROVED {
        wagate
            .set_template_status(ACCOUNT, "notice", "en_US", status)
            .unwrap();
    }
    refused_by_meta(&harness, &wagate, named_template_to(4, "notice"), 368);
    assert!(wagate.usage(NUMBER).unwrap().restricted_until.is_some());
    assert!(matches!(
        wagate.submit(named_template_to(5, "notice")),
        Ok(SubmitResult::Deferred {
            reason: DeferReason::Restricted,
            ..
        })
    ));

    // All of it is on disk: a restart keeps Meta's word.
    wagate.shutdown();
    let wagate = harness.open();
    assert_eq!(
        refused_code(wagate.submit(named_template_to(5, "order_update"))),
        Some(132_016)
    );
    assert!(wagate.usage(NUMBER).unwrap().restricted_until.is_some());
    assert_eq!(
        refused_code(wagate.submit(named_template_to(5, "promo"))),
        Some(132_015)
    );
    wagate.lift_restriction(NUMBER).unwrap();
    assert!(matches!(
        wagate.submit(named_template_to(0, "offer")),
        Ok(SubmitResult::Deferred {
            reason: DeferReason::MarketingCooldown,
            ..
        })
    ));
    accepted_id(&wagate.submit(named_template_to(5, "offer")));
    wagate.shutdown();
}

#[test]
fn metas_recategorisation_prices_and_judges_the_template_anew_across_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(3);
    // The category an acceptance carries is what the ledger prices and the rules judge by.
    let category_of = |result: Result<SubmitResult, SubmitError>| match result {
        Ok(SubmitResult::Accepted { accepted, .. }) => (accepted.category, accepted.price_micros),
        other => panic!("not accepted: {other:?}"),
    };
    let (before, _) = category_of(wagate.submit(template_to(0, None)));
    assert_eq!(before, wagate_rules::Category::Utility);
    let recategorised = webhook(
        "template_category_update",
        r#"{"message_template_id":1,"message_template_name":"order_update","message_template_language":"en_US","previous_category":"UTILITY","new_category":"MARKETING"}"#,
    );
    assert_eq!(wagate.apply_webhook(recategorised).unwrap().applied, 1);
    let (after, _) = category_of(wagate.submit(template_to(1, None)));
    assert_eq!(after, wagate_rules::Category::Marketing);
    wagate.shutdown();
    let wagate = harness.open();
    assert_eq!(
        category_of(wagate.submit(template_to(2, None))).0,
        wagate_rules::Category::Marketing,
        "Meta's category survives a restart"
    );
    wagate.shutdown();
}

#[test]
fn metas_new_template_text_counts_its_parameters_anew_across_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(3);
    assert!(
        wagate.submit(template_to(0, None)).is_ok(),
        "one parameter, as defined"
    );
    let changed = webhook(
        "message_template_components_update",
        r#"{"message_template_id":1,"message_template_name":"order_update","message_template_language":"en_US","message_template_element":"Hi {{1}}, order {{2}} shipped.","message_template_footer":"Acme"}"#,
    );
    assert_eq!(wagate.apply_webhook(changed).unwrap().applied, 1);
    let refused = |result: Result<SubmitResult, SubmitError>| match result {
        Ok(SubmitResult::Refused { code, .. }) => code,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(refused(wagate.submit(template_to(1, None))), Some(132_000));
    wagate.shutdown();
    let wagate = harness.open();
    assert_eq!(
        refused(wagate.submit(template_to(2, None))),
        Some(132_000),
        "Meta's text survives a restart"
    );
    wagate.shutdown();
}

#[test]
fn a_queued_send_whose_template_meta_paused_is_held_until_the_template_may_go_again() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1);
    // Queued behind a restriction.
    wagate.restrict_number(NUMBER).unwrap();
    let mut send = template_to(0, None);
    send.queue_when_deferred = true;
    let id = match wagate.submit(send) {
        Ok(SubmitResult::Queued { message_id, .. }) => message_id,
        other => panic!("not queued: {other:?}"),
    };
    // Meta pauses the template while it waits; the restriction then ends.
    let paused = order_update_is("PAUSED");
    assert_eq!(wagate.apply_webhook(paused).unwrap().applied, 1);
    wagate.lift_restriction(NUMBER).unwrap();
    harness.clock.advance_secs(DAY + 1);
    assert_eq!(wagate.release_due(100).unwrap(), 1);
    let held = wagate.queued(id).unwrap().expect("held, not refused");
    assert_eq!(held.reason, DeferReason::TemplatePaused);
    assert_eq!(wagate.message(id).unwrap(), None, "not refused, not sent");

    // Meta reinstates it: at its next turn the send goes.
    let reinstated = order_update_is("REINSTATED");
    assert_eq!(wagate.apply_webhook(reinstated).unwrap().applied, 1);
    harness.clock.advance_secs(3_601);
    assert_eq!(wagate.release_due(100).unwrap(), 1);
    assert_eq!(wagate.queued(id).unwrap(), None);
    wagate.wait_dispatched(Duration::from_secs(10));
    assert_eq!(harness.upstream.count(id), 1, "sent once");
    wagate.shutdown();
}

#[test]
fn statuses_move_a_sent_message_forward_only() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(1);
    let (id, _) = accepted_id(&wagate.submit(template_to(0, None)));
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    let metadata = format!(
        r#""metadata":{{"display_phone_number":"15550783881","phone_number_id":"{}"}}"#,
        NUMBER.0
    );
    let status = |state: &str| {
        webhook(
            "messages",
            &format!(
                r#"{{{metadata},"statuses":[{{"id":"wamid.{id}","status":"{state}","recipient_id":"{}"}}]}}"#,
                person(0).digits()
            ),
        )
    };
    use wagate_durable::message::Delivery;
    assert_eq!(
        wagate.apply_webhook(status("delivered")).unwrap().applied,
        1
    );
    assert_eq!(
        wagate.message(id).unwrap().unwrap().delivery,
        Delivery::Delivered
    );
    assert_eq!(wagate.apply_webhook(status("read")).unwrap().applied, 1);
    // A late "sent" (statuses arrive out of order) does not move it back.
    assert_eq!(wagate.apply_webhook(status("sent")).unwrap().ignored, 1);
    assert_eq!(
        wagate.message(id).unwrap().unwrap().delivery,
        Delivery::Read
    );
    // A status for a message wagate never sent changes nothing.
    let stranger = webhook(
        "messages",
        &format!(r#"{{{metadata},"statuses":[{{"id":"wamid.other","status":"read"}}]}}"#),
    );
    assert_eq!(wagate.apply_webhook(stranger).unwrap().ignored, 1);
    // Meta's retry of "read" finds the message read already: a repeat, with no record kept.
    assert_eq!(wagate.apply_webhook(status("read")).unwrap().repeats, 1);
    wagate.shutdown();
    let store = wagate_store::RocksStore::open(&harness.dir).unwrap();
    use wagate_store::Store;
    let mut remembered = Vec::new();
    let webhook_claims = 0u64.to_be_bytes();
    store
        .scan(
            wagate_store::Family::Idempotency,
            &webhook_claims,
            &1u64.to_be_bytes(),
            &mut |key, _| {
                remembered.push(String::from_utf8_lossy(&key[8..]).into_owned());
                true
            },
        )
        .unwrap();
    assert!(
        !remembered.iter().any(|k| k.starts_with("webhook:status:")),
        "statuses other than failed keep no dedupe record: {remembered:?}"
    );
    assert!(
        remembered.iter().any(|k| k.starts_with("delivered:")),
        "the first delivery is recorded: {remembered:?}"
    );
    drop(store);
    // The delivery state lives in the message's sent record (its wamid's), on disk.
    let again = harness.open();
    assert_eq!(again.message(id).unwrap().unwrap().delivery, Delivery::Read);
    again.shutdown();
}

#[test]
fn statuses_of_one_message_posted_at_once_never_move_it_backwards() {
    use wagate_durable::message::Delivery;
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(60);
    let ids: Vec<u64> = wagate
        .submit_many((0..60).map(|i| template_to(i, None)).collect())
        .iter()
        .map(|result| accepted_id(result).0)
        .collect();
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    let post = |id: u64, state: &str| {
        webhook(
            "messages",
            &format!(
                r#"{{"metadata":{{"display_phone_number":"15550783881","phone_number_id":"{}"}},"statuses":[{{"id":"wamid.{id}","status":"{state}"}}]}}"#,
                NUMBER.0
            ),
        )
    };
    // Meta posts a message's statuses concurrently and out of order: three senders, each
    // posting one state for every message, one POST each, in orders of their own.
    std::thread::scope(|scope| {
        for (state, stride) in [("read", 7), ("sent", 11), ("delivered", 13)] {
            let (wagate, ids, post) = (&wagate, &ids, &post);
            scope.spawn(move || {
                for k in 0..ids.len() {
                    let id = ids[(k * stride) % ids.len()];
                    wagate.apply_webhook(post(id, state)).unwrap();
                }
            });
        }
    });
    for id in ids {
        assert_eq!(
            wagate.message(id).unwrap().unwrap().delivery,
            Delivery::Read,
            "message {id} moved back from read"
        );
    }
    wagate.shutdown();
}

#[test]
fn a_projected_upgrade_and_metas_upgrade_survive_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(3_000);
    // 1,000 unique recipients a day (the 1K limit) for three days: 2x the limit in 7 days.
    for day in 0..3 {
        wagate.submit_many(
            (day * 1_000..(day + 1) * 1_000)
                .map(|i| template_to(i, None))
                .collect(),
        );
        harness.clock.advance_secs(DAY);
    }
    let usage = wagate.usage(NUMBER).unwrap();
    assert_eq!(usage.tier, "TIER_1K", "a projection raises nothing");
    let projected = usage
        .projected_upgrade_at
        .expect("projected on the hot path");
    wagate.shutdown();
    let wagate = harness.open();
    assert_eq!(
        wagate.usage(NUMBER).unwrap().projected_upgrade_at,
        Some(projected),
        "written with a group commit"
    );
    // Meta's word raises the tier.
    wagate.set_tier(NUMBER, "TIER_10K").unwrap();
    let upgraded_at = wagate.usage(NUMBER).unwrap().upgraded_at;
    assert_eq!(
        upgraded_at,
        Some(wagate.now()).map(|t| wagate_rules::Timestamp::from_secs(t.secs()))
    );
    wagate.shutdown();
    let wagate = harness.open();
    let usage = wagate.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.upgraded_at),
        ("TIER_10K", upgraded_at)
    );
    wagate.shutdown();
}

fn delivery_path(wagate: &Wagate) -> wagate_rules::usage::DeliveryPathProgress {
    let usage = wagate.usage(NUMBER).unwrap();
    usage.delivery_path.expect("reported below TIER_2K")
}

#[test]
fn delivered_template_messages_count_toward_the_delivery_path_across_restarts() {
    let harness = Harness::new(Profile::whatsapp_2025());
    let wagate = harness.start(4);
    // Person 0 gets two messages; person 3's fails. Unique people delivered to: 0, 1, 2.
    let ids: Vec<(u64, u64)> = [0, 0, 1, 2, 3]
        .into_iter()
        .map(|i| (i, accepted_id(&wagate.submit(template_to(i, None))).0))
        .collect();
    harness.clock.advance_secs(1);
    wagate.wait_dispatched(Duration::from_secs(10));
    let progress = || delivery_path(&wagate);
    assert_eq!(progress().unique_recipients, 0, "sent is not delivered");
    let statuses: Vec<String> = ids
        .iter()
        .map(|(i, id)| {
            let state = match i {
                2 => "read",
                3 => "failed",
                _ => "delivered",
            };
            format!(
                r#"{{"id":"wamid.{id}","status":"{state}","recipient_id":"{}"}}"#,
                person(*i).digits()
            )
        })
        .collect();
    let metadata = format!(
        r#""metadata":{{"display_phone_number":"15550783881","phone_number_id":"{}"}}"#,
        NUMBER.0
    );
    let post = webhook(
        "messages",
        &format!(r#"{{{metadata},"statuses":[{}]}}"#, statuses.join(",")),
    );
    assert_eq!(wagate.apply_webhook(post).unwrap().applied, 5);
    let counted = progress();
    assert_eq!(
        (
            counted.tier.as_str(),
            counted.unique_recipients,
            counted.threshold
        ),
        ("TIER_2K", 3, 2_000)
    );
    assert!(!counted.eligible());
    // A later "read" of a delivered message is not a second delivery.
    let read = webhook(
        "messages",
        &format!(
            r#"{{{metadata},"statuses":[{{"id":"wamid.{}","status":"read"}}]}}"#,
            ids[2].1
        ),
    );
    assert_eq!(wagate.apply_webhook(read).unwrap().applied, 1);
    assert_eq!(progress().unique_recipients, 3);
    wagate.shutdown();

    let wagate = harness.open();
    let progress = || delivery_path(&wagate);
    assert_eq!(progress().unique_recipients, 3, "kept on disk");
    // 30 days after the sends they leave the path's window.
    harness.clock.advance_secs(30 * DAY + 2);
    assert_eq!(progress().unique_recipients, 0);
    // At the tier the path leads to there is nothing left to count toward.
    wagate.verify_business(PortfolioId(1)).unwrap();
    assert_eq!(wagate.usage(NUMBER).unwrap().delivery_path, None);
    wagate.shutdown();
}

/// Writes a queued send's fate as a forward whose body names it, and counts what committed.
struct MarkFates {
    next_seq: Arc<std::sync::atomic::AtomicU64>,
    committed: Arc<std::sync::atomic::AtomicUsize>,
}

impl wagate_durable::tenant_news::NewsWriter for MarkFates {
    fn write(
        &self,
        news: wagate_durable::tenant_news::News<'_>,
        batch: &mut wagate_store::Batch,
    ) -> usize {
        use wagate_durable::tenant_news::{News, QueueFate};
        let News::QueuedSend(fate) = news else {
            return 0;
        };
        let what = match &fate.fate {
            QueueFate::Queued { reason, .. } => format!("queued:{}", reason.name()),
            QueueFate::Released => "released".to_string(),
            QueueFate::Dropped(refusal) => format!("dropped:{}", refusal.name()),
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let body = format!("{what}:{}:{}", fate.message_id, fate.number.0);
        wagate_durable::forward_queue::put_forward(batch, seq, "acme", body.as_bytes());
        1
    }

    fn committed(&self, count: usize) {
        self.committed.fetch_add(count, Ordering::Relaxed);
    }
}

#[test]
fn forwards_an_earlier_version_queued_move_to_their_tenant_s_range_at_open_once_each() {
    use wagate_store::{Batch, Family, Store};
    let harness = Harness::new(Profile::whatsapp_2021());
    harness.open().shutdown();
    // The queue as an earlier version wrote it: the sequence number alone as the key, the
    // tenant (length-prefixed) in the value; one record no version could read.
    let store = wagate_store::RocksStore::open(&harness.dir).unwrap();
    let mut batch = Batch::default();
    let legacy = |tenant: &str, body: &str| {
        let mut value = (tenant.len() as u16).to_be_bytes().to_vec();
        value.extend_from_slice(tenant.as_bytes());
        value.extend_from_slice(body.as_bytes());
        value
    };
    for seq in 0..5_000u64 {
        let tenant = if seq % 2 == 0 { "acme" } else { "zeta" };
        batch.put(
            Family::Forward,
            seq.to_be_bytes(),
            legacy(tenant, &format!("b{seq}")),
        );
    }
    batch.put(Family::Forward, 5_000u64.to_be_bytes(), b"\x00\x09ab");
    store.write(&batch, true).unwrap();
    drop(store);

    let wagate = harness.open();
    let tail = wagate.forward_queue_tail().unwrap();
    assert_eq!((tail.last_seq, tail.waiting), (Some(4_999), 5_000));
    assert_eq!(wagate.forward_tenants().unwrap(), ["acme", "zeta"]);
    let acme = wagate.oldest_forwards_of("acme", 10_000).unwrap();
    let seqs: Vec<u64> = acme.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..5_000).step_by(2).collect::<Vec<_>>(), "in order");
    assert!(acme
        .iter()
        .all(|f| f.tenant == "acme" && f.body == format!("b{}", f.seq).as_bytes()));
    assert_eq!(wagate.oldest_forwards_of("zeta", 3).unwrap()[2].body, b"b5");
    // Forgotten by tenant and sequence; opened again, nothing moves twice.
    wagate.forget_forwards([("acme", 0), ("zeta", 1)]).unwrap();
    wagate.shutdown();
    let wagate = harness.open();
    let tail = wagate.forward_queue_tail().unwrap();
    assert_eq!((tail.last_seq, tail.waiting), (Some(4_999), 4_998));
    assert_eq!(wagate.oldest_forwards_of("acme", 1).unwrap()[0].seq, 2);
    wagate.shutdown();
}

#[test]
fn a_queued_send_s_news_is_written_with_its_decision_once_each_and_survives_a_restart() {
    let harness = Harness::new(Profile::whatsapp_2021());
    let wagate = harness.start(2);
    let committed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let marks = || MarkFates {
        next_seq: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        committed: committed.clone(),
    };
    assert!(wagate.on_tenant_news(Box::new(marks())).is_ok());
    assert!(wagate.on_tenant_news(Box::new(marks())).is_err(), "once");
    let told = |wagate: &Wagate| -> Vec<String> {
        wagate
            .oldest_forwards_of("acme", 100)
            .unwrap()
            .into_iter()
            .map(|f| String::from_utf8(f.body).unwrap())
            .collect()
    };
    // Queued behind a restriction: its news is on disk when the answer comes.
    wagate.restrict_number(NUMBER).unwrap();
    let queued = |i: u64| {
        let mut send = template_to(i, None);
        send.queue_when_deferred = true;
        match wagate.submit(send) {
            Ok(SubmitResult::Queued { message_id, .. }) => message_id,
            other => panic!("not queued: {other:?}"),
        }
    };
    let (kept, dropped) = (queued(0), queued(1));
    let number = NUMBER.0;
    assert_eq!(
        told(&wagate),
        [
            format!("queued:restricted:{kept}:{number}"),
            format!("queued:restricted:{dropped}:{number}")
        ]
    );
    // The second person opts out meanwhile; Meta pauses the template. A release that holds
    // them again (the pause) says nothing.
    let out = wagate_rules::contact_events::ConsentChange::OptOut;
    wagate
        .consent(
            NUMBER,
            person(1),
            out,
            wagate_rules::state::contact::ConsentSource::Api,
        )
        .unwrap()
        .unwrap();
    let paused = order_update_is("PAUSED");
    assert_eq!(wagate.apply_webhook(paused).unwrap().applied, 1);
    wagate.lift_restriction(NUMBER).unwrap();
    harness.clock.advance_secs(DAY + 1);
    assert_eq!(wagate.release_due(100).unwrap(), 2);
    assert_eq!(told(&wagate).len(), 2);
    wagate.shutdown();

    // After a restart (a new writer, its sequence past the queue's tail): the first released,
    // the second dropped, once each.
    let wagate = harness.open();
    let tail = wagate.forward_queue_tail().unwrap();
    let writer = MarkFates {
        next_seq: Arc::new(std::sync::atomic::AtomicU64::new(
            tail.last_seq.map_or(0, |s| s + 1),
        )),
        committed: committed.clone(),
    };
    assert!(wagate.on_tenant_news(Box::new(writer)).is_ok());
    let reinstated = order_update_is("REINSTATED");
    assert_eq!(wagate.apply_webhook(reinstated).unwrap().applied, 1);
    harness.clock.advance_secs(3_601);
    assert_eq!(wagate.release_due(100).unwrap(), 2);
    let mut all = told(&wagate);
    assert_eq!(all.len(), 4, "{all:?}");
    all[2..].sort();
    assert_eq!(
        all[2..],
        [
            format!("dropped:opted_out:{dropped}:{number}"),
            format!("released:{kept}:{number}")
        ]
    );
    assert_eq!(committed.load(Ordering::Relaxed), 4);
    harness.clock.advance_secs(DAY);
    assert_eq!(wagate.release_due(100).unwrap(), 0);
    assert_eq!(told(&wagate).len(), 4, "nothing twice");
    wagate.shutdown();
}
