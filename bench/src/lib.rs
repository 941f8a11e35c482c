//! Shared set-up for wagate's benchmarks: an engine loaded with a workload's numbers, templates
//! and contacts on a manual clock, and the loop that feeds it traffic.

pub mod durable_setup;
pub mod workload;

use std::sync::Arc;

use crate::workload::{Workload, WorkloadSpec};
use wagate::workers::Command;
use wagate::{Decision, Engine, EngineConfig, ManualClock, Profile};

/// Simulated time between two events: 100,000 events a second across all numbers.
pub const MICROS_PER_EVENT: u64 = 10;

pub struct Prepared {
    pub engine: Engine,
    pub clock: ManualClock,
    pub workload: Workload,
}

/// An engine with `spec`'s numbers, templates and every contact's consent applied.
pub fn prepare(spec: WorkloadSpec, shards: usize) -> anyhow::Result<Prepared> {
    let clock = ManualClock::at_2026();
    let mut config = EngineConfig::new(Profile::whatsapp_2021());
    config.shards = shards;
    let mut engine = Engine::new(config, Arc::new(clock.clone()))?;
    let workload = Workload::new(spec);
    workload.install(engine.registry(), engine.now().secs())?;
    for command in workload.consent_commands() {
        apply(&mut engine, &command);
    }
    Ok(Prepared {
        engine,
        clock,
        workload,
    })
}

/// Applies one command to an inline engine; true when a send decision was accepted.
#[inline]
pub fn apply(engine: &mut Engine, command: &Command) -> bool {
    match command {
        Command::Decide(request) => matches!(engine.decide(request), Decision::Accepted(_)),
        Command::Inbound(message) => {
            let _ = engine.inbound(message);
            false
        }
        Command::Consent {
            number,
            person,
            change,
            source,
        } => {
            let _ = engine.consent(*number, *person, *change, *source);
            false
        }
        Command::DeliveryFailed {
            number,
            person,
            code,
        } => {
            let _ = engine.delivery_failed(*number, *person, *code);
            false
        }
        Command::SendFailed(failed) => {
            let _ = engine.send_failed(failed);
            false
        }
        Command::Contact { number, person } => {
            let _ = engine.contact(*number, *person);
            false
        }
    }
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`).
pub fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/statm: {statm}"))?
        .parse()?;
    Ok(pages * 4_096)
}
