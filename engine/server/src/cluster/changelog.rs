//! Each partition's changelog: one subject, `wagate.cl.<n>`, of the stream `WAGATE_CHANGELOG`
//! (its replicas on as many NATS servers). Every record is published naming the subject's last
//! sequence its writer knows (`Nats-Expected-Last-Subject-Sequence`), and JetStream stores it
//! only if that is still the last: a new owner first claims the subject with an epoch record
//! after the last one it read, and from then on every publish of the old owner is refused
//! (fencing: a paused or partitioned old owner can write, so acknowledge or dispatch, nothing).
//! A record is acknowledged only once JetStream stored it on its replicas.

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::{Context, Publish, PublishErrorKind};
use async_nats::jetstream::stream::{Config, LastRawMessageErrorKind, Stream};
use bytes::Bytes;

use super::ClusterError;

/// The stream's name; its subjects are `wagate.cl.<partition>`.
pub const STREAM: &str = "WAGATE_CHANGELOG";

/// How long one exchange with JetStream may take before it counts as failed.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `record` is an epoch record (a claim's), not a batch of writes.
pub fn is_epoch(record: &[u8]) -> bool {
    record.starts_with(EPOCH_PREFIX)
}

const EPOCH_PREFIX: &[u8] = b"epoch ";

fn subject(partition: u32) -> String {
    format!("wagate.cl.{partition}")
}

/// The changelog stream.
pub struct Changelog {
    jetstream: Context,
    stream: Stream,
}

/// The right to write one partition's changelog: the sequence of its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub partition: u32,
    pub epoch: u64,
    last: u64,
}

impl Writer {
    /// The sequence of the last record this writer wrote (its claim, at first).
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// What a replay hands each record to, with its sequence.
pub type Apply<'a> = dyn FnMut(u64, &[u8]) -> Result<(), ClusterError> + Send + 'a;

/// Why a record was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another node claimed the partition since: this writer is fenced off.
    #[error("partition {0} was claimed by a newer owner: this node may not write it")]
    Fenced(u32),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl Changelog {
    /// Opens (creating it if need be) the stream with `replicas` copies.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<Changelog, ClusterError> {
        let jetstream = async_nats::jetstream::new(client);
        let stream = jetstream
            .get_or_create_stream(Config {
                name: STREAM.to_string(),
                subjects: vec!["wagate.cl.>".to_string()],
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::of)?;
        Ok(Changelog { jetstream, stream })
    }

    /// The sequence of the partition's last record (0: none).
    async fn last(&self, partition: u32) -> Result<u64, ClusterError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&subject(partition))
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(error) => Err(ClusterError::of(error)),
        }
    }

    /// Becomes the writer of `partition` for `epoch` (its lease's): an epoch record after the
    /// last record there is, which fences off whoever wrote before. Refused when another node
    /// wrote between the read and the claim (it is the newer owner).
    pub async fn claim(&self, partition: u32, epoch: u64) -> Result<Writer, AppendError> {
        let last = self.last(partition).await?;
        let mut writer = Writer {
            partition,
            epoch,
            last,
        };
        let mut record = EPOCH_PREFIX.to_vec();
        record.extend_from_slice(epoch.to_string().as_bytes());
        let record = Bytes::from(record);
        self.append(&mut writer, record).await?;
        tracing::info!(
            partition,
            epoch,
            sequence = writer.last,
            "claimed a partition's changelog"
        );
        Ok(writer)
    }

    /// Hands every record of `partition` up to sequence `upto` (a claim's) to `apply`, in
    /// order, with its sequence: what restoring the partition replays. Each wait for the
    /// next record has `WAIT`; a stream that goes quiet before `upto` is an error.
    pub async fn replay(
        &self,
        partition: u32,
        upto: u64,
        apply: &mut Apply<'_>,
    ) -> Result<u64, ClusterError> {
        use futures_util::StreamExt;
        if upto == 0 {
            return Ok(0);
        }
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: subject(partition),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::of)?;
        let mut records = consumer.messages().await.map_err(ClusterError::of)?;
        let mut replayed = 0;
        loop {
            let next = tokio::time::timeout(WAIT, records.next())
                .await
                .map_err(|_| ClusterError::of("the changelog went quiet during a replay"))?;
            let Some(message) = next else {
                return Err(ClusterError::of("the changelog ended during a replay"));
            };
            let message = message.map_err(ClusterError::of)?;
            let sequence = message.info().map_err(ClusterError::of)?.stream_sequence;
            if sequence > upto {
                break;
            }
            apply(sequence, &message.payload)?;
            replayed += 1;
            if sequence == upto {
                break;
            }
        }
        Ok(replayed)
    }

    /// Appends `record` to the writer's partition; its sequence once stored on the replicas.
    pub async fn append(&self, writer: &mut Writer, record: Bytes) -> Result<u64, AppendError> {
        let publish = Publish::build()
            .payload(record)
            .expected_last_subject_sequence(writer.last);
        let stored = async {
            self.jetstream
                .send_publish(subject(writer.partition), publish)
                .await?
                .await
        }
        .await;
        match stored {
            Ok(ack) => {
                writer.last = ack.sequence;
                Ok(ack.sequence)
            }
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                tracing::warn!(
                    partition = writer.partition,
                    epoch = writer.epoch,
                    "fenced off: a newer owner claimed the partition's changelog"
                );
                Err(AppendError::Fenced(writer.partition))
            }
            Err(error) => Err(AppendError::Cluster(ClusterError::of(error))),
        }
    }
}
