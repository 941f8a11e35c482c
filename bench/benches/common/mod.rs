//! Shared by the parse benchmarks: one reading of a body timed next to a plain
//! `serde_json::Value` parse of the same bytes, the same run's baseline (the least a reading
//! through a JSON tree costs), so two runs on a noisy machine compare by their ratios.

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;

pub(crate) fn against_value_baseline<T>(
    group: &mut BenchmarkGroup<WallTime>,
    name: &str,
    body: &[u8],
    parse: impl Fn(&[u8]) -> T,
) {
    group.bench_function(format!("parse_{name}"), |b| {
        b.iter(|| parse(std::hint::black_box(body)))
    });
    group.bench_function(format!("value_baseline_{name}"), |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(std::hint::black_box(body)).expect("valid")
        })
    });
}
