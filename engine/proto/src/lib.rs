//! # wagate-proto
//!
//! wagate's gRPC ingest as generated from `wagate.proto`: the `Messaging` service (one send, or
//! many on a bidirectional stream), its server trait for `wagate serve` and its client for load
//! generators and senders. Each request carries Meta's send request as JSON.

// Generated code: its items are as public and as documented as the .proto makes them.
#![allow(unreachable_pub, clippy::all)]

tonic::include_proto!("wagate.v1");
