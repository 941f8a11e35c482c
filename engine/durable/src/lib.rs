//! # wagate-durable
//!
//! The durable engine providers embed: [`Wagate`]. Every decision and event is written to the
//! store (RocksDB by default) in a synced group commit before it is acknowledged, retries with
//! an idempotency key get the original answer, accepted messages are dispatched to an
//! [`dispatch::Upstream`] exactly once, and a restart restores everything as acknowledged.

mod audit;
pub mod campaigns;
mod combine;
mod commit;
pub mod consent_history;
pub mod deferred;
pub mod dispatch;
mod early_status;
pub mod erasure;
mod family_scan;
pub mod forward_queue;
pub mod groups;
// The hand-over lanes are the engine's own; the crash test reads their shape (`testkit`).
#[cfg(feature = "testkit")]
pub mod hand_over;
#[cfg(not(feature = "testkit"))]
#[allow(unreachable_pub)] // public only with `testkit`
mod hand_over;
mod idempotency;
mod ledger_rows;
pub mod log_limit;
pub mod message;
pub mod message_ids;
pub mod metrics;
mod open_error;
mod outcome;
mod payload_packing;
mod queued_sends;
mod reconcile;
mod records;
mod recovery;
mod release_queue;
mod sent_record;
mod settlement;
pub mod submission;
mod submit_batch;
mod submit_error;
mod suppression;
mod template_deliveries;
pub mod tenant_news;
mod upstream;
mod volume_tiers;
pub mod wagate;
// The shard pool is the durable engine's own; the decision benchmark and the pool's tests drive
// it directly (`testkit`). Embedders take `Wagate`, or the rules' inline `Engine`.
#[cfg(feature = "testkit")]
pub mod workers;
#[cfg(not(feature = "testkit"))]
#[allow(unreachable_pub)] // public only with `testkit`
mod workers;

pub use hand_over::DispatchFailure;
pub use open_error::OpenError;
pub use wagate::{admin, webhook};
pub use wagate::{
    CampaignError, DroppedSend, Released, ReleasedSend, SettleOutcome, Settlement, SubmitError,
    SubmitResult, Wagate, WagateConfig,
};
/// A consent change as [`Wagate::consent_many`] takes it.
pub use workers::Consent;
