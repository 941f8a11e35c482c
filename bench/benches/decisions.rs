//! Decisions per second with a million contacts, Zipf recipients and the default mix of
//! inbound messages, in-window replies, templates and refusals: inline on one core, and on a
//! pool of two shard threads.

use std::collections::VecDeque;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wagate::workers::{Command, ShardPool};
use wagate_bench::workload::WorkloadSpec;
use wagate_bench::{apply, prepare, MICROS_PER_EVENT};

const EVENTS: usize = 400_000;
const BATCH: usize = 1_024;
/// Batches in flight at once, so a worker never waits for the submitter.
const IN_FLIGHT: usize = 8;

fn traffic(prepared: &mut wagate_bench::Prepared) -> Vec<Command> {
    (&mut prepared.workload)
        .take(EVENTS)
        .map(|action| action.command())
        .collect()
}

fn one_core(c: &mut Criterion) {
    let mut prepared = prepare(WorkloadSpec::million_contacts(), 1).expect("set-up");
    let commands = traffic(&mut prepared);
    let mut group = c.benchmark_group("decisions_1m_contacts");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut position = 0;
    group.bench_function("one_core_inline", |b| {
        b.iter(|| {
            let mut accepted = 0u32;
            for command in &commands[position..position + BATCH] {
                accepted += u32::from(apply(&mut prepared.engine, command));
            }
            prepared
                .clock
                .advance_micros(BATCH as u64 * MICROS_PER_EVENT);
            position = (position + BATCH) % (EVENTS - BATCH);
            accepted
        })
    });
    group.finish();
}

fn two_shards(c: &mut Criterion) {
    let mut prepared = prepare(WorkloadSpec::million_contacts(), 2).expect("set-up");
    let commands = traffic(&mut prepared);
    let clock = prepared.clock.clone();
    let pool = ShardPool::start(prepared.engine);
    let mut group = c.benchmark_group("decisions_1m_contacts");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut position = 0;
    let mut in_flight = VecDeque::new();
    group.bench_function("two_shard_threads", |b| {
        b.iter_batched(
            || {
                let batch = commands[position..position + BATCH].to_vec();
                position = (position + BATCH) % (EVENTS - BATCH);
                clock.advance_micros(BATCH as u64 * MICROS_PER_EVENT);
                batch
            },
            // In steady state each iteration sends one batch and collects one: the throughput
            // of the pool with IN_FLIGHT batches queued.
            |batch| {
                in_flight.push_back(pool.send(batch));
                (in_flight.len() > IN_FLIGHT)
                    .then(|| in_flight.pop_front().map(|p| p.wait().expect("in memory")))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    for pending in in_flight {
        pending.wait().expect("in memory");
    }
    pool.shutdown();
}

criterion_group!(benches, one_core, two_shards);
criterion_main!(benches);
