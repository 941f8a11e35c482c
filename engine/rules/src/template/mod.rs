//! Message templates as data: definitions, statuses and the submission lint. A registered
//! template, with its lifecycle and the send-time checks, is `registered_template`.

pub mod lint;
pub mod model;
pub mod status;
