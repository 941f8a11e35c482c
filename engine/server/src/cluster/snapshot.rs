//! Partition snapshots: a RocksDB checkpoint of a partition's local store, taken under its
//! changelog writer's lock (so it holds exactly the records up to one sequence), packed into
//! one blob and kept in the replicated object store bucket `wagate_snapshots` (one object per
//! partition, the newest replacing the last). A node taking the partition unpacks the newest
//! and replays only the changelog after its sequence: restore time is bounded by the records
//! since the last snapshot, not by the partition's whole history. The changelog keeps records
//! for `cluster.changelog_retention_secs`, far longer than snapshots are apart.

use std::path::Path;

use async_nats::jetstream::object_store::{Config, GetErrorKind, ObjectStore};
use tokio::io::AsyncReadExt;

use super::ClusterError;

const BUCKET: &str = "wagate_snapshots";
const MAGIC: &[u8; 8] = b"wgsnap01";
/// Largest file or blob a snapshot holds (a partition's store is far smaller).
const LARGEST: u64 = 1 << 34;

fn object(partition: u32) -> String {
    format!("p{partition}")
}

/// Packs the files of checkpoint directory `dir` (flat, as RocksDB writes it), covering the
/// changelog up to `sequence`.
pub fn pack(dir: &Path, sequence: u64) -> std::io::Result<Vec<u8>> {
    let mut blob = MAGIC.to_vec();
    blob.extend_from_slice(&sequence.to_le_bytes());
    let mut files: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    files.sort_by_key(|f| f.file_name());
    blob.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for file in files {
        let name = file.file_name();
        let name = name.to_string_lossy();
        let data = std::fs::read(file.path())?;
        blob.extend_from_slice(&(name.len() as u32).to_le_bytes());
        blob.extend_from_slice(name.as_bytes());
        blob.extend_from_slice(&(data.len() as u64).to_le_bytes());
        blob.extend_from_slice(&data);
    }
    Ok(blob)
}

/// Unpacks `blob` into `dir` (created); the changelog sequence it covers.
pub fn unpack(blob: &[u8], dir: &Path) -> std::io::Result<u64> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut rest = blob
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("not a wagate snapshot"))?;
    let mut take = |n: u64| -> std::io::Result<&[u8]> {
        if n > LARGEST || rest.len() < n as usize {
            return Err(bad("a snapshot that ends early"));
        }
        let (head, tail) = rest.split_at(n as usize);
        rest = tail;
        Ok(head)
    };
    let word = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u64, |v, byte| v << 8 | u64::from(*byte))
    };
    let sequence = word(take(8)?);
    let count = word(take(4)?);
    std::fs::create_dir_all(dir)?;
    for _ in 0..count {
        let length = take(4)?;
        let name = String::from_utf8(take(word(length))?.to_vec())
            .map_err(|_| bad("a snapshot file name that is not UTF-8"))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(bad("a snapshot file name outside its directory"));
        }
        let size = word(take(8)?);
        std::fs::write(dir.join(&name), take(size)?)?;
    }
    if !rest.is_empty() {
        return Err(bad("a snapshot with bytes after its end"));
    }
    Ok(sequence)
}

/// Runs `work` as a task of its own: the object store's reader in async-nats 0.38 unwraps a
/// consumer it could not create (a timeout while JetStream elects a leader) and panics; in its
/// own task that panic is this call's error, and whoever asked (a restore) carries on.
async fn apart<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ClusterError>> + Send + 'static,
) -> Result<T, ClusterError> {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(ClusterError::of(format!("the object store failed: {e}"))))
}

/// The bucket of snapshots.
pub struct Snapshots {
    bucket: ObjectStore,
}

impl Snapshots {
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<Snapshots, ClusterError> {
        let jetstream = async_nats::jetstream::new(client);
        let bucket = match jetstream.get_object_store(BUCKET).await {
            Ok(bucket) => bucket,
            Err(_) => jetstream
                .create_object_store(Config {
                    bucket: BUCKET.to_string(),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(ClusterError::of)?,
        };
        Ok(Snapshots { bucket })
    }

    /// Keeps `blob` as `partition`'s newest snapshot.
    pub async fn put(&self, partition: u32, blob: Vec<u8>) -> Result<(), ClusterError> {
        let bucket = self.bucket.clone();
        apart(async move {
            let mut reader = blob.as_slice();
            bucket
                .put(object(partition).as_str(), &mut reader)
                .await
                .map(|_| ())
                .map_err(ClusterError::of)
        })
        .await
    }

    /// `partition`'s newest snapshot, if it has one.
    pub async fn get(&self, partition: u32) -> Result<Option<Vec<u8>>, ClusterError> {
        let bucket = self.bucket.clone();
        apart(async move {
            let mut found = match bucket.get(object(partition)).await {
                Ok(found) => found,
                Err(error) if error.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(ClusterError::of(error)),
            };
            let mut blob = Vec::new();
            found
                .read_to_end(&mut blob)
                .await
                .map_err(ClusterError::of)?;
            Ok(Some(blob))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_comes_back_file_for_file_with_its_sequence() {
        let base = std::env::temp_dir().join(format!("wagate-snapshot-{}", std::process::id()));
        let (from, to) = (base.join("from"), base.join("to"));
        std::fs::create_dir_all(&from).expect("a directory");
        std::fs::write(from.join("000012.sst"), vec![7u8; 3_000]).expect("a file");
        std::fs::write(from.join("CURRENT"), b"MANIFEST-000005\n").expect("a file");
        let blob = pack(&from, 4_242).expect("packed");
        assert_eq!(unpack(&blob, &to).expect("unpacked"), 4_242);
        assert_eq!(
            std::fs::read(to.join("000012.sst")).expect("read"),
            vec![7u8; 3_000]
        );
        assert_eq!(
            std::fs::read(to.join("CURRENT")).expect("read"),
            b"MANIFEST-000005\n"
        );
        assert!(unpack(&blob[..blob.len() - 1], &base.join("cut")).is_err());
        assert!(unpack(b"not a snapshot", &base.join("bad")).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}
