//! # wagate-loadgen
//!
//! Realistic traffic for wagate, a stand-in for Meta, and the peer baseline:
//! - [`driver`]: the network driver (`loadgen http`): HTTP single and bulk, gRPC unary and
//!   streaming, or the Redis baseline; closed or open loop; hdrhistogram latency, throughput
//!   per second, a JSON summary; [`report`]: the same as a table and an SVG plot.
//! - [`mock_meta`] (`loadgen mock-meta`): the Cloud API stand-in, judging every send with the
//!   [`oracle`] (Meta's rules written independently of wagate's code), sending signed status
//!   and inbound webhooks, injecting faults.
//! - [`serve`]: the accept loop the stand-ins share (mock-meta here, the tests' Meta stub).
//! - [`redis_baseline`]: the same checks the way providers commonly build them, Redis 7 with one
//!   Lua script per message.

pub mod driver;
mod http1_wire;
mod http_connection;
pub mod mock_groups;
mod mock_media;
pub mod mock_meta;
pub mod oracle;
mod pacer;
pub mod redis_baseline;
pub mod report;
pub mod serve;
mod session;
pub mod traffic;
