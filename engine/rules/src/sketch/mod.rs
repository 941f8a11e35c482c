//! Unique-recipient sketches: HyperLogLog registers and their rolling-window form.

pub mod hll;
mod views;
pub mod windowed;
