//! Times opening an existing data directory (recovery alone), e.g. one left by
//! `recovery CONTACTS DIR`.
//!
//! `cargo run --release -p wagate-bench --bin open -- DIR`

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use wagate::durable::Wagate;
use wagate::ManualClock;
use wagate_bench::durable_setup::{config, IdleUpstream};

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).context("usage: open DIR")?;
    let started = Instant::now();
    let wagate = Wagate::open(
        config(dir.as_ref(), true),
        Arc::new(ManualClock::at_2026()),
        Arc::new(IdleUpstream),
    )?;
    println!("opened in {:.2} s", started.elapsed().as_secs_f64());
    wagate.shutdown();
    Ok(())
}
