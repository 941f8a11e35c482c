//! # wagate
//!
//! A dispatch and compliance engine for WhatsApp Business messaging. This crate's core decides,
//! for each send, whether WhatsApp's rules allow it now, later or never, and keeps the state
//! those rules need; that core does no I/O and needs no async runtime. [`durable`] adds
//! RocksDB and dispatch, and [`server`] the Cloud-API-compatible HTTP service on tokio.
//!
//! ## Layout
//! - [`engine`]: the embeddable engine (all shards in the caller's thread).
//! - [`workers`]: the same shards on worker threads, fed over crossbeam channels.
//! - [`shard`]: one owner of a slice of people: decisions, inbound events, expiry.
//! - [`registry`], [`number`], [`scope`]: shared numbers, portfolios, limit scopes, templates.
//! - [`template`]: definitions, lint, lifecycle, send checks.
//! - [`sketch`]: HyperLogLog and its rolling 24 h / 7-day form.
//! - [`state`]: contact records, the contact table, expiry queues.
//! - [`pacing`], [`price`], [`profile`], [`clock`]: rules, rate cards, policy data, time.
//! - [`decision`], [`events`], [`usage`]: what goes in and what comes out.

pub mod clock;
pub mod cloud_api;
pub mod config;
pub mod core;
pub mod decision;
pub mod durable;
pub mod engine;
pub mod events;
pub mod hash;
pub mod ids;
pub mod json_text;
pub mod number;
pub mod pacing;
pub mod price;
pub mod profile;
pub mod quality;
pub mod registry;
pub mod scope;
pub mod server;
pub mod shard;
pub mod sketch;
pub mod state;
pub mod store;
pub mod template;
pub mod usage;
pub mod webhooks;
pub mod workers;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::EngineConfig;
pub use decision::{Accepted, Decision, DeferReason, Message, Refusal, SendRequest};
pub use engine::Engine;
pub use events::{ConsentChange, InboundContent, InboundMessage};
pub use ids::{AccountId, Msisdn, PhoneNumberId, PortfolioId};
pub use profile::Profile;
pub use quality::Quality;
pub use registry::{NumberRegistration, Registry};
pub use state::contact::ConsentSource;
pub use template::model::{Category, TemplateDefinition, TemplateSend, TextParam};
pub use template::status::TemplateStatus;
pub use usage::Usage;
