//! The durable engine and its worker pool, one test binary (RocksDB linked once).

// Test code: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod durable;
mod workers;
