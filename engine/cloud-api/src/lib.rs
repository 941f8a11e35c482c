//! # wagate-cloud-api
//!
//! Meta's WhatsApp Cloud API wire format as wagate speaks it, shared by the server and by the
//! load generator's stand-in for Meta: send requests in ([`request`]), success and error answers
//! out ([`response`], [`error`]) in the shapes a sender's existing code already handles, and
//! Meta's webhooks with their signatures ([`webhooks`]). [`json_text`] writes JSON strings
//! without building a value tree on the hot path; [`media`] holds the kinds and sizes of files
//! Meta takes.

pub mod error;
pub mod json_text;
pub mod media;
pub mod request;
pub mod response;
pub mod webhooks;
