//! The cost of a queued send's record, written by the shard with its decision and read by the
//! releaser: `DeferredRecord::encode` and `decode` of the load generator's template send (its
//! payload packed, see `durable/payload_packing`), next to the same record with a payload that
//! cannot be packed (kept as written) as the same run's baseline.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wagate::clock::Timestamp;
use wagate::decision::DeferReason;
use wagate::durable::deferred::DeferredRecord;
use wagate::durable::submission::Submission;
use wagate::ids::PhoneNumberId;

const TEMPLATE: &str = r#"{"messaging_product":"whatsapp","to":"+14155550123","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"order 123456"}]}]}}"#;

fn record(payload: &[u8]) -> DeferredRecord {
    let read = Submission::from_send_body(PhoneNumberId(2_000_001), TEMPLATE.into(), None, true)
        .expect("a valid send");
    let mut submission = read.submission;
    submission.payload = payload.to_vec();
    DeferredRecord {
        id: 7,
        due: Timestamp(1_767_225_600_000_000),
        reason: DeferReason::PairRate,
        submission,
    }
}

fn queued_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("queued_record");
    group.throughput(Throughput::Elements(1));
    // A code byte (0x01) in a string: the payload is kept as written.
    let unpackable = TEMPLATE.replace("order 123456", "order \u{1}23456");
    for (name, payload) in [("packed", TEMPLATE), ("as_written", unpackable.as_str())] {
        let record = record(payload.as_bytes());
        let encoded = record.encode();
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| std::hint::black_box(&record).encode())
        });
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| DeferredRecord::decode(&record.key(), std::hint::black_box(&encoded)))
        });
        println!("queued_record {name}: {} bytes", encoded.len());
    }
    group.finish();
}

criterion_group!(benches, queued_record);
criterion_main!(benches);
