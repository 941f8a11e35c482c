//! Cluster mode, first parts, over a real three-server NATS cluster: the partitions' leases in
//! a replicated JetStream KV bucket (one holder at a time, kept through the loss of one server,
//! taken by another node with a greater epoch only once it lapsed, the old holder's renewal then
//! refused), and each partition's changelog fenced by JetStream's expected subject sequence
//! (after a newer owner's claim, nothing of the old owner's is stored).

use std::time::Duration;

use crate::support::fixture::fresh_dir;
use crate::support::nats::NatsCluster;
use anyhow::{bail, Result};
use bytes::Bytes;
use wagate_server::cluster::changelog::{AppendError, Changelog, STREAM};
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

/// The changelog stream opened from server `i`, once JetStream has its leader.
async fn changelog(cluster: &NatsCluster, i: usize) -> Result<Changelog> {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let client = cluster.client(i).await?;
        match Changelog::open(client, 3, Duration::from_secs(86_400)).await {
            Ok(changelog) => return Ok(changelog),
            Err(error) if tokio::time::Instant::now() > deadline => bail!("{error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_newer_owner_claims_a_partition_the_old_owner_can_write_nothing() -> Result<()> {
    let dir = fresh_dir("cluster-fencing");
    let cluster = NatsCluster::start(&dir)?;
    let old = changelog(&cluster, 0).await?;
    let new = changelog(&cluster, 1).await?;
    let mut first = old.claim(7, 1).await?;
    let stored = old
        .append(&mut first, Bytes::from_static(b"accepted 1"))
        .await?;
    // The newer owner claims the partition after what it read (a paused old owner does not
    // know): from then on the old owner's writes are refused by JetStream itself.
    let mut second = new.claim(7, 2).await?;
    match old
        .append(&mut first, Bytes::from_static(b"accepted 2"))
        .await
    {
        Err(AppendError::Fenced(7)) => {}
        other => bail!("the old owner wrote after the claim: {other:?}"),
    }
    let next = new
        .append(&mut second, Bytes::from_static(b"accepted 3"))
        .await?;
    assert!(next > stored);
    // Another partition is another writer's: claimed and written freely.
    let mut other = old.claim(8, 1).await?;
    old.append(&mut other, Bytes::from_static(b"elsewhere"))
        .await?;
    // Partition 7 holds the first owner's epoch and record, then the second's: nothing of the
    // fenced write.
    let mut stream = cluster
        .client(2)
        .await
        .map(async_nats::jetstream::new)?
        .get_stream(STREAM)
        .await?;
    let records = stream.info().await?.state.messages;
    assert_eq!(
        records, 6,
        "epoch 1, accepted 1, epoch 2, accepted 3, and partition 8's two"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
