//! # wagate
//!
//! A dispatch and compliance engine for WhatsApp Business messaging. The rules themselves (which
//! send is allowed now, later or never, and the state they need) are the `wagate-rules` crate,
//! with no I/O, re-exported here module by module; this crate adds [`durable`] (RocksDB and
//! dispatch) and [`server`] (the Cloud-API-compatible HTTP and gRPC service on tokio).
//!
//! ## Layout
//! - `workers` (with the `testkit` feature, for benchmarks): the rules' shards on worker
//!   threads, fed over crossbeam channels.
//! - [`durable`]: the embeddable durable engine ([`durable::Wagate`]), its log and dispatch.
//! - [`store`]: the key-value store under it (RocksDB, and a memory store for tests).
//! - [`cloud_api`], [`webhooks`], [`json_text`]: Meta's wire formats.
//! - [`server`]: the HTTP and gRPC service.

pub use wagate_durable::Wagate;
pub use wagate_rules::*;

pub use wagate_cloud_api as cloud_api;
pub use wagate_cloud_api::json_text;
pub use wagate_cloud_api::webhooks;
pub use wagate_durable as durable;
pub use wagate_durable::log_limit;
#[cfg(feature = "testkit")]
pub use wagate_durable::workers;
pub use wagate_server as server;
pub use wagate_store as store;
