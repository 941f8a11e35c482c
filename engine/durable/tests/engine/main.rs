//! The durable engine and its worker pool, one test binary (RocksDB linked once).

mod durable;
mod workers;
