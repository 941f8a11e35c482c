//! # wagate-loadgen
//!
//! Realistic traffic for wagate. Today: the [`workload`] model (numbers and tiers, contacts with
//! Zipf popularity and consent rates, a mix of inbound messages, in-window replies, templates and
//! cold free-form sends) that the benchmarks drive the engine with; the network drivers build on
//! it.

pub mod workload;
