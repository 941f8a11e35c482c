//! Message templates: definitions, the submission lint, the lifecycle and send-time checks.

pub mod lint;
pub mod model;
pub mod registered;
pub mod status;
