//! Times opening an existing data directory (recovery alone), e.g. one left by
//! `recovery CONTACTS DIR`.
//!
//! `cargo run --release -p wagate-bench --bin open -- DIR`

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use wagate::durable::dispatch::{Reconciled, Upstream, UpstreamError};
use wagate::durable::message::StoredMessage;
use wagate::durable::{Wagate, WagateConfig};
use wagate::{EngineConfig, ManualClock, Profile};

struct Idle;

impl Upstream for Idle {
    fn send(&self, _: &StoredMessage) -> Result<String, UpstreamError> {
        Ok("wamid.bench".into())
    }

    fn reconcile(&self, _: &StoredMessage) -> Reconciled {
        Reconciled::NotDelivered
    }
}

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).context("usage: open DIR")?;
    let config = WagateConfig {
        engine: EngineConfig {
            shards: 2,
            ..EngineConfig::new(Profile::whatsapp_2021())
        },
        data_dir: dir.into(),
        ..WagateConfig::default()
    };
    let started = Instant::now();
    let wagate = Wagate::open(config, Arc::new(ManualClock::at_2026()), Arc::new(Idle))?;
    println!("opened in {:.2} s", started.elapsed().as_secs_f64());
    wagate.shutdown();
    Ok(())
}
