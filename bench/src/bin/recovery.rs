//! Recovery time: fills a data directory with N contacts (opted in; a tenth of them sent a
//! template in the last day, so counts, expiry queues and sketches have work to rebuild), shuts
//! the engine down, and times opening it again.
//!
//! `cargo run --release -p wagate-bench --bin recovery -- [contacts]`

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use wagate::durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate::durable::message::StoredMessage;
use wagate::durable::submission::Submission;
use wagate::durable::{Wagate, WagateConfig};
use wagate::{
    AccountId, Category, ConsentChange, ConsentSource, EngineConfig, ManualClock, Message, Msisdn,
    NumberRegistration, PhoneNumberId, PortfolioId, Profile, SendRequest, TemplateDefinition,
    TemplateSend, TemplateStatus, TextParam,
};

const NUMBERS: u64 = 100;
const ACCOUNT: AccountId = AccountId(1);

struct Idle;

impl Upstream for Idle {
    fn send(&self, _: &StoredMessage) -> Result<String, UpstreamError> {
        Ok("wamid.bench".into())
    }

    fn reconcile(&self, _: &StoredMessage) -> Reconciled {
        Reconciled::NotDelivered
    }
}

fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).expect("valid E.164")
}

fn number(i: u64) -> PhoneNumberId {
    PhoneNumberId(1_000 + i % NUMBERS)
}

fn main() -> Result<()> {
    let contacts: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(10_000_000), |a| a.parse())?;
    // With a second argument the directory is kept there for profiling the open alone.
    let keep = std::env::args().nth(2);
    let dir = keep.clone().map_or_else(
        || std::env::temp_dir().join(format!("wagate-bench-recovery-{}", std::process::id())),
        std::path::PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let config = WagateConfig {
        engine: EngineConfig {
            shards: 2,
            ..EngineConfig::new(Profile::whatsapp_2021())
        },
        data_dir: dir.clone(),
        ..WagateConfig::default()
    };
    let clock = ManualClock::at_2026();
    let filling = Instant::now();
    let wagate = Wagate::open(config.clone(), Arc::new(clock.clone()), Arc::new(Idle))?;
    for n in 0..NUMBERS {
        wagate.register_number(NumberRegistration {
            id: number(n),
            account: ACCOUNT,
            portfolio: PortfolioId(1),
            tier: Some("TIER_100K".into()),
            throughput_mps: Some(1_000),
        })?;
    }
    wagate.submit_template(TemplateDefinition::new(
        ACCOUNT,
        "order_update",
        "en_US",
        Category::Utility,
        "Hi {{1}}, shipped.",
    ))?;
    for status in [TemplateStatus::InReview, TemplateStatus::Approved] {
        wagate.set_template_status(ACCOUNT, "order_update", "en_US", status)?;
    }
    for first in (0..contacts).step_by(100_000) {
        let changes = (first..(first + 100_000).min(contacts))
            .map(|i| {
                (
                    number(i),
                    person(i),
                    ConsentChange::OptIn,
                    ConsentSource::Api,
                )
            })
            .collect();
        wagate.consent_many(changes)?;
    }
    let sent = contacts / 10;
    for first in (0..sent).step_by(20_000) {
        let submissions = (first..(first + 20_000).min(sent))
            .map(|i| Submission {
                request: SendRequest {
                    number: number(i),
                    to: person(i),
                    message: Message::Template(TemplateSend::new(
                        "order_update",
                        "en_US",
                        vec![TextParam::positional("Ana")],
                    )),
                },
                payload: b"{}".to_vec(),
                idempotency_key: None,
            })
            .collect();
        wagate.submit_many(submissions);
        clock.advance_secs(1);
    }
    let used_before: u32 = (0..NUMBERS)
        .map(|n| wagate.usage(number(n)).map(|u| u.used_24h).unwrap_or(0))
        .sum();
    wagate.shutdown();
    println!(
        "filled {contacts} contacts ({sent} with a counted send) in {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    let opening = Instant::now();
    let wagate = Wagate::open(config, Arc::new(clock.clone()), Arc::new(Idle))?;
    let recovery = opening.elapsed();
    let used_after: u32 = (0..NUMBERS)
        .map(|n| wagate.usage(number(n)).map(|u| u.used_24h).unwrap_or(0))
        .sum();
    println!("recovery of {contacts} contacts: {:.2} s (24 h counts before {used_before}, after {used_after})", recovery.as_secs_f64());
    anyhow::ensure!(used_before == used_after, "counts differ after recovery");
    wagate.shutdown();
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
