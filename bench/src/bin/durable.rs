//! Durable acceptance through the embedded API, no network: client threads submit batches of
//! templates to new recipients; every accepted message is written (contact, message, outbox,
//! ledger) in a group commit before its batch is answered.
//!
//! `cargo run --release -p wagate-bench --bin durable -- [--no-sync] [messages] [clients] [batch]`
//!
//! The clock is frozen, so the dispatcher stays idle: this measures acceptance alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use wagate::durable::submission::Submission;
use wagate::durable::{SubmitResult, Wagate};
use wagate::{ConsentChange, ConsentSource, ManualClock};
use wagate_bench::durable_setup::{config, install, number, person, template_to, IdleUpstream};

/// The commit path allocates in one thread and frees in another, which glibc's allocator
/// handles poorly in this tight loop (the server uses mimalloc for the same reason).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn submission(i: u64) -> Submission {
    let payload = format!(
        r#"{{"messaging_product":"whatsapp","to":"+{}","type":"template","template":{{"name":"order_update","language":{{"code":"en_US"}}}}}}"#,
        person(i).digits()
    );
    template_to(i, payload.into_bytes())
}

fn main() -> Result<()> {
    let mut sync = true;
    let mut numbers = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-sync" => sync = false,
            other => numbers.push(
                other
                    .parse::<u64>()
                    .with_context(|| format!("not a number: {other}"))?,
            ),
        }
    }
    let messages = numbers.first().copied().unwrap_or(2_000_000);
    let clients = numbers.get(1).copied().unwrap_or(4);
    let batch = numbers.get(2).copied().unwrap_or(2_048);
    let dir = std::env::temp_dir().join(format!("wagate-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wagate = Arc::new(Wagate::open(
        config(&dir, sync),
        Arc::new(ManualClock::at_2026()),
        Arc::new(IdleUpstream),
    )?);
    install(&wagate)?;
    for chunk in (0..messages).collect::<Vec<_>>().chunks(50_000) {
        let changes = chunk
            .iter()
            .map(|i| {
                (
                    number(*i),
                    person(*i),
                    ConsentChange::OptIn,
                    ConsentSource::Api,
                )
            })
            .collect();
        wagate.consent_many(changes)?;
    }

    wagate.durability().record_latencies(true);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (wagate, next) = (wagate.clone(), next.clone());
            std::thread::spawn(move || -> Result<(Histogram<u64>, u64)> {
                let mut latency = Histogram::<u64>::new(3)?;
                let mut accepted = 0;
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= messages {
                        return Ok((latency, accepted));
                    }
                    let submissions = (first..(first + batch).min(messages))
                        .map(submission)
                        .collect();
                    let began = Instant::now();
                    for result in wagate.submit_many(submissions) {
                        match result {
                            Ok(SubmitResult::Accepted { .. }) => accepted += 1,
                            other => bail!("not accepted: {other:?}"),
                        }
                    }
                    latency.record(began.elapsed().as_micros() as u64)?;
                }
            })
        })
        .collect();
    let mut submit_latency = Histogram::<u64>::new(3)?;
    let mut accepted = 0;
    for worker in workers {
        let (histogram, count) = worker.join().expect("client thread")?;
        submit_latency.add(&histogram)?;
        accepted += count;
    }
    let elapsed = started.elapsed();
    let mut commit_latency = Histogram::<u64>::new(3)?;
    for micros in wagate.durability().take_latencies() {
        commit_latency.record(u64::from(micros))?;
    }
    println!("sync: {sync}, clients: {clients}, batch: {batch}, shards: 2");
    println!(
        "accepted durably: {accepted} in {:.2} s = {:.0} messages/s",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64()
    );
    println!(
        "group commit write (one synced batch): {} groups, p50 {} us, p99 {} us, max {} us",
        commit_latency.len(),
        commit_latency.value_at_quantile(0.5),
        commit_latency.value_at_quantile(0.99),
        commit_latency.max()
    );
    println!(
        "submit_many of {batch} (decide + commit + answer): p50 {:.2} ms, p99 {:.2} ms",
        submit_latency.value_at_quantile(0.5) as f64 / 1e3,
        submit_latency.value_at_quantile(0.99) as f64 / 1e3
    );
    Arc::into_inner(wagate)
        .context("clients are done")?
        .shutdown();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
