//! The real `wagate` binary, started on a free port with a local stand-in for Meta's API,
//! driven over HTTP as a sender, as Meta (webhooks) and as an operator (admin API).
//! This test program belongs to the `wagate` package so that cargo builds the binary it
//! starts (`CARGO_BIN_EXE_wagate`) from the same sources in the same run.

// Test support: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::fixture::*;
use anyhow::Result;

const WAIT: Duration = Duration::from_secs(20);

/// Meta's word and the person's, over the public API.
mod truth;

/// What the server refuses or survives that it once took badly.
mod hardening;
/// What an operator sees: logs and the values answers name.
mod operability;

/// A business's own events set its automations going.
mod automations;
/// 50,000 people over the days the plan says, under each rule set's ramp.
mod campaign_ramps;
/// Campaigns as objects: upload, plan, run over days, Meta's pause, crash, counts.
mod campaign_runs;
/// The campaign plan before anything is sent.
mod campaigns;
/// Cluster mode: partition leases over a real NATS JetStream cluster.
mod cluster_leases;
/// Cluster mode: three nodes over three NATS servers, through crashes, a pause, a lost server.
mod cluster_nodes;
/// The operator console in a real headless Chromium.
mod console;
mod contract;
/// Meta's Cloud API through wagate's base URL: read marks and the pass-through.
mod drop_in;
/// A real third-party Cloud API client (pywa) against wagate, only its base URL changed.
mod drop_in_client;
/// The right to erasure: every family scanned, the suppression list, the audit log.
mod erasure;
mod from_meta;
/// Groups: mock-meta's Groups API and its webhooks.
mod groups;
mod grpc;
/// The HTTP port's own HTTP/1.1 reader, over raw TCP.
mod http1_front;
mod lifecycle;
/// Media through wagate's base URL: uploads streamed and checked, reads, downloads, deletes.
mod media;
/// Sender pools: sticky, roomiest, fail-over.
mod pools;
/// Prices from dated rate cards, on the manual clock.
mod pricing;
/// Quiet hours in the person's local time.
mod quiet_hours;
/// Scheduled sends, reminders, validity periods.
mod scheduled;
/// A send's own consent topic, however it comes.
mod send_topics;
mod sending;
mod under_load;
/// A message names the consent it relied on.
mod why_sent;

mod support;

/// A fresh server whose one message Meta has received and holds unanswered; its id.
pub(crate) async fn sent_while_meta_holds(name: &str, who: u64) -> Result<(Fixture, String)> {
    let (f, to) = Fixture::ready_for(name, "", who).await?;
    f.meta.hold();
    let sent = f.send_update(&to).await?;
    f.meta.wait_for(1, WAIT).await?;
    Ok((f, sent.message_id()))
}
