//! Recovery time: fills a data directory with N contacts (opted in; a tenth of them sent a
//! template in the last day, so counts, expiry queues and sketches have work to rebuild), shuts
//! the engine down, and times opening it again.
//!
//! `cargo run --release -p wagate-bench --bin recovery -- [contacts]`

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use wagate::durable::Wagate;
use wagate::{ConsentChange, ConsentSource, ManualClock};
use wagate_bench::durable_setup::{
    config, install, number, person, template_to, IdleUpstream, NUMBERS,
};

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
    let clock = ManualClock::at_2026();
    let filling = Instant::now();
    let wagate = Wagate::open(
        config(&dir, true),
        Arc::new(clock.clone()),
        Arc::new(IdleUpstream),
    )?;
    install(&wagate)?;
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
            .map(|i| template_to(i, b"{}".to_vec()))
            .collect();
        wagate.submit_many(submissions);
        clock.advance_secs(1);
    }
    let used = |wagate: &Wagate| -> u32 {
        (0..NUMBERS)
            .map(|n| wagate.usage(number(n)).map(|u| u.used_24h).unwrap_or(0))
            .sum()
    };
    let used_before = used(&wagate);
    wagate.shutdown();
    println!(
        "filled {contacts} contacts ({sent} with a counted send) in {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    let opening = Instant::now();
    let wagate = Wagate::open(
        config(&dir, true),
        Arc::new(clock.clone()),
        Arc::new(IdleUpstream),
    )?;
    let recovery = opening.elapsed();
    let used_after = used(&wagate);
    println!("recovery of {contacts} contacts: {:.2} s (24 h counts before {used_before}, after {used_after})", recovery.as_secs_f64());
    anyhow::ensure!(used_before == used_after, "counts differ after recovery");
    wagate.shutdown();
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
