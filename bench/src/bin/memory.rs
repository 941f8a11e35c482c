//! Resident memory per contact: loads a million contacts, runs the default traffic mix over
//! them, and divides the growth in resident memory by the contact records held.
//!
//! `cargo run --release -p wagate-bench --bin memory [contacts] [events]`

use wagate_bench::workload::WorkloadSpec;
use wagate_bench::{apply, prepare, resident_bytes, MICROS_PER_EVENT};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let contacts: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let events: usize = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let before = resident_bytes()?;
    let spec = WorkloadSpec {
        contacts,
        ..WorkloadSpec::million_contacts()
    };
    let mut prepared = prepare(spec, 1)?;
    let mut accepted = 0u64;
    for _ in 0..events {
        let command = prepared.workload.next_action().command();
        accepted += u64::from(apply(&mut prepared.engine, &command));
        prepared.clock.advance_micros(MICROS_PER_EVENT);
    }
    let after = resident_bytes()?;
    let records = prepared.engine.contacts() as u64;
    let heap = prepared.engine.heap_bytes();
    println!("contacts (records held): {records}");
    println!("events: {events}, sends accepted: {accepted}");
    println!(
        "resident before: {:.1} MiB, after: {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    println!(
        "resident bytes per contact: {:.1}",
        (after - before) as f64 / records as f64
    );
    let per_contact = |bytes: usize| bytes as f64 / records as f64;
    println!(
        "engine heap bytes per contact: {:.1} (contact table {:.1}, expiry queues {:.1}, sketches {:.1})",
        per_contact(heap.total()),
        per_contact(heap.contacts),
        per_contact(heap.expiry),
        per_contact(heap.sketches)
    );
    Ok(())
}
