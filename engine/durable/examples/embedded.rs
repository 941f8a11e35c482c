//! Embedding wagate in a provider's own process: open the durable engine on a data directory,
//! register a number and a template, record consent, send with an idempotency key, feed an
//! inbound message, read usage and the ledger, and shut down cleanly.
//!
//! `cargo run --release -p wagate --example embedded [DATA_DIR]`
//!
//! The upstream here prints what it would send; a real one posts to Meta's Cloud API.

use std::sync::Arc;
use std::time::Duration;

use wagate_durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate_durable::message::{message_id_text, StoredMessage};
use wagate_durable::submission::Submission;
use wagate_durable::{SubmitResult, Wagate, WagateConfig};
use wagate_rules::contact_events::InboundContent;
use wagate_rules::{
    AccountId, Category, ConsentChange, ConsentSource, InboundMessage, Msisdn, NumberRegistration,
    PhoneNumberId, PortfolioId, SystemClock, TemplateDefinition, TemplateStatus,
};

struct PrintingUpstream;

impl Upstream for PrintingUpstream {
    fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError> {
        println!(
            "  upstream <- {} to {}: {}",
            message_id_text(message.id),
            message.to,
            String::from_utf8_lossy(&message.payload)
        );
        Ok(format!("wamid.example.{}", message.id))
    }

    fn reconcile(&self, _message: &StoredMessage) -> Reconciled {
        // This upstream keeps no record, so it cannot say; the message stays in flight.
        Reconciled::Unknown
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./data-example".into());
    let config = WagateConfig {
        data_dir: data_dir.clone().into(),
        ..WagateConfig::default()
    };
    let wagate = Wagate::open(config, Arc::new(SystemClock), Arc::new(PrintingUpstream))?;
    let number = PhoneNumberId(106_540_352_242_922);
    let account = AccountId(1);
    if wagate.registry().number(number).is_none() {
        wagate.register_number(NumberRegistration {
            id: number,
            account,
            portfolio: PortfolioId(1),
            tier: None,
            throughput_mps: None,
            display_phone_number: None,
        })?;
        let findings = wagate.submit_template(TemplateDefinition::new(
            account,
            "order_update",
            "en_US",
            Category::Utility,
            "Hello {{1}}, your order has shipped.",
        ))?;
        println!("template submitted; lint findings: {findings:?}");
        for status in [TemplateStatus::InReview, TemplateStatus::Approved] {
            wagate.set_template_status(account, "order_update", "en_US", status)?;
        }
    }
    let ana = Msisdn::parse("+49 151 0000 0001")?;
    wagate.consent(number, ana, ConsentChange::OptIn, ConsentSource::Api)??;

    // The send as the Cloud API takes it: the rules judge what this body asks for (a template,
    // its parameters, the recipient), and this body is what goes to Meta.
    let body = br#"{"messaging_product":"whatsapp","to":"+49 151 0000 0001","type":"template",
        "template":{"name":"order_update","language":{"code":"en_US"},
        "components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]}}"#;
    let send = |key: &str| {
        Submission::from_send_body(number, body.to_vec(), Some(key.to_string()), false)
            .map(|read| read.submission)
    };
    for attempt in ["first", "retry"] {
        match wagate.submit(send("order-17-shipped")?)? {
            SubmitResult::Accepted {
                message_id,
                accepted,
                replayed,
            } => println!(
                "{attempt}: accepted {} (replayed: {replayed}), ${:.2}, new unique recipient: {}",
                message_id_text(message_id),
                accepted.price_micros as f64 / 1e6,
                accepted.new_unique_recipient
            ),
            other => println!("{attempt}: {other:?}"),
        }
    }
    let effect = wagate.inbound(InboundMessage {
        number,
        from: ana,
        content: InboundContent::Text("Thanks! When does it arrive?".into()),
        referral: false,
    })??;
    println!("inbound: window open until {}", effect.window_until);

    wagate.wait_dispatched(Duration::from_secs(5));
    let usage = wagate.usage(number)?;
    println!(
        "usage: {} of {:?} unique recipients in 24 h ({}), next tier {:?} at {:?} in 7 days",
        usage.used_24h, usage.limit, usage.tier, usage.next_tier, usage.upgrade_threshold
    );
    let spent = wagate.ledger()?.sum(Some(number), None, None);
    println!(
        "ledger: {} messages, ${:.2} (data in {data_dir})",
        spent.messages,
        spent.micros as f64 / 1e6
    );
    wagate.shutdown();
    Ok(())
}
