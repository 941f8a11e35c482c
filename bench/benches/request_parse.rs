//! The cost of reading Meta's send request: `parse_send` on the two bodies the load generator
//! sends (a template with one body parameter, an in-window text), next to a plain parse of the
//! same bytes into `serde_json::Value` as the same run's baseline.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wagate::cloud_api::request::parse_send;

const TEMPLATE: &str = r#"{"messaging_product":"whatsapp","to":"+14155550123","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"order 123456"}]}]}}"#;
const TEXT: &str = r#"{"messaging_product":"whatsapp","to":"+14155550123","type":"text","text":{"body":"reply 123456"}}"#;

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_request_parse");
    group.throughput(Throughput::Elements(1));
    for (name, body) in [("template", TEMPLATE), ("text", TEXT)] {
        common::against_value_baseline(&mut group, &format!("send_{name}"), body.as_bytes(), |b| {
            parse_send(b).expect("valid")
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
