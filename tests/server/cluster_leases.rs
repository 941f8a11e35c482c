//! Cluster mode, first part: the partitions' leases in a replicated JetStream KV bucket, over
//! a real three-server NATS cluster: one holder at a time, kept through the loss of one
//! server, taken by another node (with a greater epoch) only once it lapsed, and the old
//! holder's renewal then refused.

use std::time::Duration;

use crate::support::fixture::fresh_dir;
use crate::support::nats::NatsCluster;
use anyhow::{bail, Result};
use wagate_server::cluster::leases::Leases;

/// How long a lease lasts: longer than JetStream takes to elect a new leader for the bucket
/// when a server dies (a few seconds), as a deployment's must be.
const LEASE: Duration = Duration::from_secs(10);

/// A lease bucket opened from server `i` as `node`, once JetStream has its leader.
async fn leases(cluster: &NatsCluster, i: usize, node: &str) -> Result<Leases> {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let client = cluster.client(i).await?;
        match Leases::open(client, "wagate_leases", 3, LEASE, node).await {
            Ok(leases) => return Ok(leases),
            Err(error) if tokio::time::Instant::now() > deadline => bail!("{error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_has_one_holder_until_its_lease_lapses_then_another_with_a_greater_epoch(
) -> Result<()> {
    let dir = fresh_dir("cluster-leases");
    let mut cluster = NatsCluster::start(&dir)?;
    let a = leases(&cluster, 0, "node-a").await?;
    let b = leases(&cluster, 1, "node-b").await?;
    let held = a.take(0).await?.expect("partition 0 is free");
    assert_eq!(b.take(0).await?, None, "one holder at a time");
    assert!(
        b.take(1).await?.is_some(),
        "another partition is another key"
    );
    let held = a.renew(held).await?.expect("the holder keeps it");
    assert_eq!(b.holder(0).await?.map(|h| h.0), Some("node-a".to_string()));
    // One of the three servers dies: the bucket has three copies, the lease goes on.
    cluster.kill(2);
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    let held = loop {
        match a.renew(held).await {
            Ok(Some(kept)) => break kept,
            Ok(None) => bail!("the lease was lost with one server down"),
            // A new stream leader may be elected meanwhile: the renewal is asked again.
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(error) => bail!("{error}"),
        }
    };
    // The holder stops renewing (paused, partitioned, dead): once its lease lapses, another
    // node takes the partition, with a greater epoch, and the old holder's renewal is refused.
    let deadline = tokio::time::Instant::now() + LEASE + crate::WAIT;
    let taken = loop {
        if let Ok(Some(taken)) = b.take(0).await {
            break taken;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the lapsed lease was never taken");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(taken.epoch > held.epoch, "{taken:?} after {held:?}");
    assert_eq!(a.renew(held).await?, None, "the old holder is fenced off");
    assert_eq!(a.holder(0).await?.map(|h| h.0), Some("node-b".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
