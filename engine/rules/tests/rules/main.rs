//! The rules end to end through the inline engine, one test binary: consent and the window,
//! pacing and prices, templates, and the messaging limit, under both profiles.

// Test code: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod consent_and_window;
mod pacing_and_price;
mod templates;
mod tiers;
