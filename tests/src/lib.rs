//! Shared helpers for wagate's cross-crate tests. The test programs live beside this crate's
//! manifest (`compliance_model.rs`, ...).

// Test support: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

pub mod fixture;
pub mod meta_stub;
pub mod process;
pub mod raw_http;
pub mod web;
