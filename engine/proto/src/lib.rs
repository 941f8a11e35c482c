//! # wagate-proto
//!
//! wagate's gRPC as generated from `wagate.proto`: the `Messaging` service (one send, or many
//! on a bidirectional stream) and the `Records` service (consent, people, messages, usage, as
//! the HTTP API answers them), their server traits for `wagate serve` and their clients for
//! load generators and senders. Each send carries Meta's send request as JSON.

// Generated code: its items are as public and as documented as the .proto makes them.
#![allow(unreachable_pub, clippy::all)]

tonic::include_proto!("wagate.v1");
