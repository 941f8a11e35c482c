//! Each partition's changelog: one subject, `wagate.cl.<n>`, of the stream `WAGATE_CHANGELOG`
//! (its replicas on as many NATS servers). Every record is published naming the subject's last
//! sequence its writer knows (`Nats-Expected-Last-Subject-Sequence`), and JetStream stores it
//! only if that is still the last: a new owner first claims the subject with an epoch record
//! after the last one it read, and from then on every publish of the old owner is refused
//! (fencing: a paused or partitioned old owner can write, so acknowledge or dispatch, nothing).
//! A record is acknowledged only once JetStream stored it on its replicas.

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
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

/// Why a replay stopped: JetStream faltered (read on), or a record was refused (stop).
enum Replay {
    Faltered(ClusterError),
    Refused(ClusterError),
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
    /// order, with its sequence: what restoring the partition replays. Read in batches by an
    /// ephemeral pull consumer; when JetStream falters (a leader being elected), the read
    /// starts again after the last record applied, for up to three `WAIT`s; a record `apply`
    /// refuses ends the replay at once. The number of records applied.
    pub async fn replay(
        &self,
        partition: u32,
        upto: u64,
        apply: &mut Apply<'_>,
    ) -> Result<u64, ClusterError> {
        let mut next = 1;
        let mut applied = 0;
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        while next <= upto {
            match self
                .replay_from(partition, &mut next, upto, &mut applied, apply)
                .await
            {
                Ok(()) => {}
                Err(Replay::Refused(error)) => return Err(error),
                Err(Replay::Faltered(error)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(partition, next, %error, "a replay faltered: reading on");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(Replay::Faltered(error)) => return Err(error),
            }
        }
        Ok(applied)
    }

    async fn replay_from(
        &self,
        partition: u32,
        next: &mut u64,
        upto: u64,
        applied: &mut u64,
        apply: &mut Apply<'_>,
    ) -> Result<(), Replay> {
        use futures_util::StreamExt;
        let faltered = |e| Replay::Faltered(ClusterError::of(e));
        let consumer = tokio::time::timeout(
            WAIT,
            self.stream.create_consumer(pull::Config {
                filter_subject: subject(partition),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: *next,
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: WAIT * 6,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| faltered("creating a replay consumer timed out".to_string()))?
        .map_err(|e| faltered(e.to_string()))?;
        let mut idle = 0;
        while *next <= upto {
            let mut batch = consumer
                .batch()
                .max_messages(1_000)
                .expires(std::time::Duration::from_millis(500))
                .messages()
                .await
                .map_err(|e| faltered(e.to_string()))?;
            let mut got = 0;
            while let Some(message) = tokio::time::timeout(WAIT, batch.next())
                .await
                .map_err(|_| faltered("a replay batch went quiet".to_string()))?
            {
                let message = message.map_err(|e| faltered(e.to_string()))?;
                let sequence = message
                    .info()
                    .map_err(|e| faltered(e.to_string()))?
                    .stream_sequence;
                if sequence > upto {
                    *next = upto + 1;
                    return Ok(());
                }
                apply(sequence, &message.payload).map_err(Replay::Refused)?;
                *applied += 1;
                *next = sequence + 1;
                got += 1;
            }
            if got == 0 {
                idle += 1;
                if idle > 20 {
                    return Err(faltered(format!(
                        "the changelog gave nothing after sequence {} of {upto}",
                        *next - 1
                    )));
                }
            }
        }
        Ok(())
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
