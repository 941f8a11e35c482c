//! wagate's cross-crate tests, one test program (RocksDB linked once): the model-based
//! property test of the compliance core, the SIGKILL crash test, the full-disk test, and the
//! Redis baseline's own checks. The server's tests live with the `wagate` package
//! (`tests/server/`), which builds the binary they start.

mod compliance_model;
mod crash;
mod disk_full;
mod redis_baseline;
