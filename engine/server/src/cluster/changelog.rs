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
    /// Largest part of a record one message carries (below the server's `max_payload`).
    part_bytes: usize,
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

/// The tag a record's first byte carries: the whole record, a part with more to come, or its
/// last part. (An epoch record is text, `epoch <n>`.)
const WHOLE: u8 = b'W';
const PART: u8 = b'P';
const LAST_PART: u8 = b'E';

/// Bytes of a record per message for a server taking `max_payload`: room left for headers.
fn part_bytes(max_payload: usize) -> usize {
    max_payload.saturating_sub(16 << 10).max(64 << 10)
}

/// The messages `record` is written as: one, or its parts in order.
fn parts(record: &[u8], part_bytes: usize) -> Vec<Bytes> {
    if record.len() < part_bytes {
        let mut whole = Vec::with_capacity(record.len() + 1);
        whole.push(WHOLE);
        whole.extend_from_slice(record);
        return vec![Bytes::from(whole)];
    }
    let chunks: Vec<&[u8]> = record.chunks(part_bytes).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut part = Vec::with_capacity(chunk.len() + 1);
            part.push(if i + 1 == chunks.len() {
                LAST_PART
            } else {
                PART
            });
            part.extend_from_slice(chunk);
            Bytes::from(part)
        })
        .collect()
}

/// Puts records back together from their messages, in order: a record is handed on only
/// once its last part came; parts cut off by an epoch record (their writer was fenced before
/// it finished, so nothing of it was acknowledged) are dropped.
#[derive(Default)]
struct Reassembly {
    pending: Vec<u8>,
}

impl Reassembly {
    /// The whole record `message` completes, if any (an epoch record is one).
    fn take<'a>(&'a mut self, message: &'a [u8]) -> Option<&'a [u8]> {
        match message.first() {
            Some(&WHOLE) => {
                self.pending.clear();
                Some(&message[1..])
            }
            Some(&PART) => {
                self.pending.extend_from_slice(&message[1..]);
                None
            }
            Some(&LAST_PART) => {
                self.pending.extend_from_slice(&message[1..]);
                Some(&self.pending)
            }
            _ => {
                self.pending.clear();
                Some(message)
            }
        }
    }

    /// Ready for the next record once the last one was handed on.
    fn handed_on(&mut self, message: &[u8]) {
        if message.first() == Some(&LAST_PART) {
            self.pending.clear();
        }
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
        retention: std::time::Duration,
    ) -> Result<Changelog, ClusterError> {
        let client_max_payload = client.server_info().max_payload;
        let jetstream = async_nats::jetstream::new(client);
        let stream = jetstream
            .get_or_create_stream(Config {
                name: STREAM.to_string(),
                subjects: vec!["wagate.cl.>".to_string()],
                num_replicas: replicas,
                // Records older than this go: restores start from a snapshot far newer.
                max_age: retention,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::of)?;
        Ok(Changelog {
            jetstream,
            stream,
            part_bytes: part_bytes(client_max_payload),
        })
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

    /// Hands every record of `partition` from sequence `from` up to `upto` (a claim's) to `apply`, in
    /// order, with its sequence: what restoring the partition replays. Read in batches by an
    /// ephemeral pull consumer; when JetStream falters (a leader being elected), the read
    /// starts again after the last record applied, for up to three `WAIT`s; a record `apply`
    /// refuses ends the replay at once. The number of records applied.
    pub async fn replay(
        &self,
        partition: u32,
        from: u64,
        upto: u64,
        apply: &mut Apply<'_>,
    ) -> Result<u64, ClusterError> {
        let mut next = from.max(1);
        let mut applied = 0;
        let mut reassembly = Reassembly::default();
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        while next <= upto {
            match self
                .replay_from(
                    partition,
                    &mut next,
                    upto,
                    &mut applied,
                    &mut reassembly,
                    apply,
                )
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
        reassembly: &mut Reassembly,
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
                if let Some(record) = reassembly.take(&message.payload) {
                    apply(sequence, record).map_err(Replay::Refused)?;
                    *applied += 1;
                }
                reassembly.handed_on(&message.payload);
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

    /// Appends `record` (a batch of writes) to the writer's partition, in parts when it is
    /// larger than a message may be; done once every part is stored on the replicas.
    pub async fn append_record(
        &self,
        writer: &mut Writer,
        record: &[u8],
    ) -> Result<u64, AppendError> {
        let mut last = 0;
        for part in parts(record, self.part_bytes) {
            last = self.append(writer, part).await?;
        }
        Ok(last)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_split_into_parts_comes_back_whole_and_a_cut_one_is_dropped() {
        let record: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let messages = parts(&record, 65_536);
        assert_eq!(messages.len(), 5);
        let mut reassembly = Reassembly::default();
        let mut whole = Vec::new();
        for message in &messages {
            if let Some(done) = reassembly.take(message) {
                whole.push(done.to_vec());
            }
            reassembly.handed_on(message);
        }
        assert_eq!(whole, vec![record.clone()]);
        // A writer fenced after two parts: the epoch record drops them; the next is whole.
        let small = parts(b"small", 65_536);
        assert_eq!(small.len(), 1);
        let mut reassembly = Reassembly::default();
        let mut seen = Vec::new();
        for message in [&messages[0], &messages[1]]
            .into_iter()
            .cloned()
            .chain([Bytes::from_static(b"epoch 9")])
            .chain(small)
        {
            if let Some(done) = reassembly.take(&message) {
                seen.push(done.to_vec());
            }
            reassembly.handed_on(&message);
        }
        assert_eq!(seen, vec![b"epoch 9".to_vec(), b"small".to_vec()]);
    }
}
