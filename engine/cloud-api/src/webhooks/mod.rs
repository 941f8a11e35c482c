//! Meta's webhooks: authenticating them and turning their payloads into events.

pub mod events;
pub mod signature;
