//! What the durable benchmarks share: an upstream that accepts everything, the engine's
//! configuration, and a hundred numbers with an approved template.

use std::path::Path;

use wagate::durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate::durable::message::StoredMessage;
use wagate::durable::submission::Submission;
use wagate::durable::{Wagate, WagateConfig};
use wagate::{
    AccountId, Category, EngineConfig, Message, Msisdn, NumberRegistration, PhoneNumberId,
    PortfolioId, Profile, SendRequest, TemplateDefinition, TemplateSend, TemplateStatus, TextParam,
};

pub const NUMBERS: u64 = 100;
const ACCOUNT: AccountId = AccountId(1);

/// Takes every message at once and has always delivered what it was asked about never.
pub struct IdleUpstream;

impl Upstream for IdleUpstream {
    fn send(&self, _: &StoredMessage) -> Result<String, UpstreamError> {
        Ok("wamid.bench".into())
    }

    fn reconcile(&self, _: &StoredMessage) -> Reconciled {
        Reconciled::NotDelivered
    }
}

pub fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).expect("valid E.164")
}

/// The number person `i` is messaged from.
pub fn number(i: u64) -> PhoneNumberId {
    PhoneNumberId(1_000 + i % NUMBERS)
}

/// Two shards, `whatsapp-2021`, RocksDB in `dir`.
pub fn config(dir: &Path, sync: bool) -> WagateConfig {
    WagateConfig {
        engine: EngineConfig {
            shards: 2,
            ..EngineConfig::new(Profile::whatsapp_2021())
        },
        data_dir: dir.to_path_buf(),
        sync,
        ..WagateConfig::default()
    }
}

/// Registers the numbers on `TIER_100K` at 1,000 messages/s and approves the template.
pub fn install(wagate: &Wagate) -> anyhow::Result<()> {
    for n in 0..NUMBERS {
        wagate.register_number(NumberRegistration {
            id: number(n),
            account: ACCOUNT,
            portfolio: PortfolioId(1),
            tier: Some("TIER_100K".into()),
            throughput_mps: Some(1_000),
            display_phone_number: None,
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
    Ok(())
}

/// The template to person `i`, with `payload` as the upstream body.
pub fn template_to(i: u64, payload: Vec<u8>) -> Submission {
    Submission {
        request: SendRequest {
            number: number(i),
            to: person(i),
            message: Message::Template(TemplateSend::new(
                "order_update",
                "en_US",
                vec![TextParam::positional("Ana")],
            )),
            options: Default::default(),
        },
        payload,
        idempotency_key: None,
        queue_when_deferred: false,
    }
}
