//! Why the durable engine could not open.

use wagate_rules::config::ConfigError;
use wagate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
