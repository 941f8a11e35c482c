//! # wagate-rules
//!
//! wagate's compliance core: for each send, whether WhatsApp's rules allow it now, later or
//! never, and the state those rules need. It does no I/O and needs no async runtime: the
//! durable engine (`wagate::durable`) adds RocksDB and dispatch around it, and the server the
//! Cloud-API-compatible HTTP service.
//!
//! ## Layout
//! - [`inline_engine`]: the embeddable engine (all shards in the caller's thread).
//! - [`shard`]: one owner of a slice of people: decisions, inbound events, expiry; with its
//!   [`shard_context`] (the registry, profile, rate card and clock every shard reads).
//! - [`registry`], [`number`], [`scope`]: shared numbers, portfolios, limit scopes, templates.
//! - [`template`]: definitions, lint, lifecycle, send checks.
//! - [`sketch`]: HyperLogLog and its rolling 24 h / 7-day form.
//! - [`state`]: contact records, the contact table, expiry queues.
//! - [`pacing`], [`price`], [`rate_cards`], [`volume`], [`profile`], [`clock`]: rules, prices
//!   (rate cards by date, markets, monthly volume tiers), policy data, time.
//! - [`decision`], [`contact_events`], [`usage`]: what goes in and what comes out.

pub mod automations;
pub mod campaign_plan;
pub mod clock;
pub mod config;
pub mod contact_events;
pub mod decision;
pub mod groups;
pub mod hash;
pub mod ids;
pub mod inline_engine;
pub mod keywords;
pub mod number;
pub mod pacing;
pub mod price;
pub mod profile;
pub mod quality;
pub mod quiet_hours;
pub mod rate_cards;
pub mod registered_template;
pub mod registry;
pub mod scope;
pub mod shard;
pub mod shard_context;
pub mod sketch;
pub mod state;
pub mod template;
pub mod time_zones;
pub mod topics;
pub mod usage;
pub mod volume;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::EngineConfig;
pub use contact_events::{ConsentChange, InboundContent, InboundMessage};
pub use decision::{Accepted, Decision, DeferReason, Message, Refusal, SendOptions, SendRequest};
pub use ids::{AccountId, Msisdn, PhoneNumberId, PortfolioId};
pub use inline_engine::Engine;
pub use profile::Profile;
pub use quality::Quality;
pub use registry::{NumberRegistration, Registry};
pub use state::contact::ConsentSource;
pub use template::model::{Category, TemplateDefinition, TemplateSend, TextParam};
pub use template::status::TemplateStatus;
pub use usage::Usage;
