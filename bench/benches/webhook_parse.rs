//! The cost of reading Meta's status webhooks: `parse_webhook` on a POST of 50 statuses as
//! mock-meta sends them, next to a plain parse of the same bytes into `serde_json::Value` (the
//! least the reading did before it was typed) as the same run's baseline.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wagate::webhooks::events::parse_webhook;

const STATUSES: usize = 50;

fn body() -> String {
    let statuses: Vec<String> = (0..STATUSES)
        .map(|i| {
            format!(
                r#"{{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI{i:012}","status":"delivered","timestamp":"1750030073","recipient_id":"1650{i:07}","conversation":{{"id":"c{i}","origin":{{"type":"utility"}}}},"pricing":{{"billable":true,"pricing_model":"PMP","category":"utility"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"0","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"2000001","phone_number_id":"2000001"}},"statuses":[{}]}}}}]}}]}}"#,
        statuses.join(",")
    )
}

fn parse(c: &mut Criterion) {
    let body = body();
    let mut group = c.benchmark_group("status_webhook_parse");
    group.throughput(Throughput::Elements(STATUSES as u64));
    common::against_value_baseline(&mut group, "webhook_50_statuses", body.as_bytes(), |b| {
        parse_webhook(b).expect("valid")
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
