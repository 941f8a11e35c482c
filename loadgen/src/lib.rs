//! # wagate-loadgen
//!
//! Realistic traffic for wagate. Today: the [`workload`] model (numbers and tiers, contacts with
//! Zipf popularity and consent rates, a mix of inbound messages, in-window replies, templates and
//! cold free-form sends) that the benchmarks drive the engine with, and the [`oracle`] that
//! judges what reaches Meta's stand-in by Meta's rules, independently of wagate's code. The
//! network drivers and `mock-meta` build on them.

pub mod driver;
pub mod mock_meta;
pub mod oracle;
pub mod redis_baseline;
pub mod workload;
