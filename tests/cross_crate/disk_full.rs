//! A full disk, for real: the engine's data directory is a small tmpfs. When a group commit
//! fails for lack of space the engine answers with the error, refuses all new work rather than
//! acknowledge what it could not store, and everything it did acknowledge is there after the
//! disk grows and the engine starts again.
//!
//! Mounting needs root, as CI has; elsewhere the test says so and fails.

// Test code: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use wagate::durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate::durable::message::StoredMessage;
use wagate::durable::submission::Submission;
use wagate::durable::{SubmitError, SubmitResult, Wagate, WagateConfig};
use wagate::store::StoreError;
use wagate::{
    AccountId, ConsentChange, ConsentSource, EngineConfig, ManualClock, Msisdn, PhoneNumberId,
    Profile,
};
use wagate_test_support::{order_update, order_update_to, registration, TO_APPROVED};

const NUMBER: PhoneNumberId = PhoneNumberId(1_000);
const ACCOUNT: AccountId = AccountId(1);

struct Nowhere;

impl Upstream for Nowhere {
    fn send(&self, _: &StoredMessage) -> Result<String, UpstreamError> {
        Err(UpstreamError::Retryable(
            "the test keeps everything queued".into(),
        ))
    }

    fn reconcile(&self, _: &StoredMessage) -> Reconciled {
        Reconciled::NotDelivered
    }
}

fn mount(dir: &Path, size: &str, remount: bool) {
    let options = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a tmpfs needs root (CI runs as root): mount -o {options} failed"
    );
}

fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).unwrap()
}

fn open(dir: &Path, clock: &ManualClock) -> Result<Wagate, wagate::durable::wagate::OpenError> {
    let config = WagateConfig {
        engine: EngineConfig {
            shards: 2,
            ..EngineConfig::new(Profile::whatsapp_2021())
        },
        data_dir: dir.join("data"),
        ..WagateConfig::default()
    };
    Wagate::open(config, Arc::new(clock.clone()), Arc::new(Nowhere))
}

fn send(i: u64) -> Submission {
    Submission {
        request: order_update_to(NUMBER, person(i)),
        // A kilobyte a message so that the disk fills quickly.
        payload: vec![b'x'; 1_024],
        idempotency_key: None,
        queue_when_deferred: false,
    }
}

#[test]
fn a_full_disk_stops_acceptance_and_loses_nothing_acknowledged() {
    let dir = std::env::temp_dir().join(format!("wagate-full-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    mount(&dir, "24m", false);
    let _unmount = Unmount(dir.clone());
    let clock = ManualClock::at_2026();
    let wagate = open(&dir, &clock).unwrap();
    wagate
        .register_number(registration(NUMBER, ACCOUNT, Some("TIER_100K")))
        .unwrap();
    wagate.submit_template(order_update(ACCOUNT)).unwrap();
    for status in TO_APPROVED {
        wagate
            .set_template_status(ACCOUNT, "order_update", "en_US", status)
            .unwrap();
    }
    let people = 60_000u64;
    let consents = (0..people)
        .map(|i| (NUMBER, person(i), ConsentChange::OptIn, ConsentSource::Api))
        .collect();
    wagate.consent_many(consents).unwrap();

    let mut acknowledged = HashSet::new();
    let mut failure = None;
    for batch in 0..people / 500 {
        let people = batch * 500..(batch + 1) * 500;
        for (i, result) in people
            .clone()
            .zip(wagate.submit_many(people.map(send).collect()))
        {
            match result {
                Ok(SubmitResult::Accepted { message_id, .. }) => {
                    acknowledged.insert((message_id, i));
                }
                Ok(other) => panic!("person {i}: {other:?}"),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    let failure = failure.expect("24 MiB filled up");
    assert!(
        matches!(failure, SubmitError::Unavailable(StoreError::NoSpace(_))),
        "{failure}"
    );
    assert!(failure.to_string().contains("disk is full"), "{failure}");
    assert!(matches!(wagate.failure(), Some(StoreError::NoSpace(_))));
    // Nothing more is accepted, however small.
    let after = wagate.submit(send(people - 1));
    assert!(
        matches!(after, Err(SubmitError::Unavailable(StoreError::NoSpace(_)))),
        "{after:?}"
    );
    assert!(
        acknowledged.len() > 1_000,
        "only {} acknowledged before the disk filled",
        acknowledged.len()
    );
    wagate.shutdown();

    mount(&dir, "512m", true);
    let wagate = open(&dir, &clock).unwrap();
    for (id, i) in &acknowledged {
        let message = wagate
            .message(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged message {id} lost"));
        assert_eq!(message.to, person(*i));
    }
    // Each shard commits on its own, so what was stored is exactly what was acknowledged.
    assert_eq!(
        wagate.usage(NUMBER).unwrap().used_24h as usize,
        acknowledged.len()
    );
    assert!(matches!(
        wagate.submit(send(people - 1)),
        Ok(SubmitResult::Accepted { .. })
    ));
    wagate.shutdown();
}

/// Unmounts the tmpfs and removes its mount point when the test ends, passed or not.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
