//! # wagate-durable
//!
//! The durable engine providers embed: [`Wagate`]. Every decision and event is written to the
//! store (RocksDB by default) in a synced group commit before it is acknowledged, retries with
//! an idempotency key get the original answer, accepted messages are dispatched to an
//! [`dispatch::Upstream`] exactly once, and a restart restores everything as acknowledged.

pub mod combine;
pub mod commit;
pub mod deferred;
pub mod dispatch;
pub mod early_status;
pub mod forward_queue;
pub mod hand_over;
pub mod idempotency;
pub mod log_limit;
pub mod message;
pub mod metrics;
mod open_error;
pub mod outcome;
pub mod records;
pub mod recovery;
pub mod release_queue;
pub mod sent_record;
mod settlement;
pub mod submission;
mod submit_batch;
mod submit_error;
pub mod template_deliveries;
pub mod upstream;
pub mod wagate;
pub mod workers;

pub use open_error::OpenError;
pub use wagate::{admin, webhook};
pub use wagate::{SettleOutcome, Settlement, SubmitError, SubmitResult, Wagate, WagateConfig};
