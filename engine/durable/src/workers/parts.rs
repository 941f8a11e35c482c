//! A batch's part for one worker, and the way back: a part holds commands of one kind and where
//! their answers go (a waiting thread, an async task, or nobody); once run, its answers wait
//! for the group's commit, then go back to be put in the batch's order.

use crossbeam_channel::{Receiver, Sender};
use wagate_rules::clock::Timestamp;
use wagate_rules::shard::Shard;
use wagate_store::StoreError;

use super::commands::ShardCommand;
use super::Writes;

/// One worker's answers for its part of a batch (each with its place in the batch), or why
/// that part could not be made durable.
pub(super) type Replies<A> = Result<Vec<(usize, A)>, (Vec<usize>, StoreError)>;

/// Where a worker answers its part of a batch: a thread waiting on a channel shared by the
/// batch's parts, or an async task waiting on this part's own oneshot.
pub(super) enum ReplyTo<A> {
    Thread(Sender<Replies<A>>),
    Task(tokio::sync::oneshot::Sender<Replies<A>>),
    /// Commands told through a [`super::PoolTeller`]: nobody waits for their answers.
    Nobody,
}

impl<A> ReplyTo<A> {
    /// The submitter may have gone away; its answers are then nobody's.
    fn send(self, replies: Replies<A>) {
        match self {
            ReplyTo::Thread(sender) => {
                let _ = sender.send(replies);
            }
            ReplyTo::Task(sender) => {
                let _ = sender.send(replies);
            }
            ReplyTo::Nobody => {}
        }
    }
}

/// A part as a worker's queue carries it, whatever its commands' kind.
pub(super) trait Part: Send {
    /// Its commands.
    fn len(&self) -> usize;

    /// Runs nothing and answers every command with `error` (the disk is behind memory).
    fn refuse(self: Box<Self>, error: &StoreError);

    /// Runs its commands in order; their answers, to be given once the group is durable.
    fn run(
        self: Box<Self>,
        shard: &mut Shard,
        now: Timestamp,
        writes: Option<&mut Writes>,
    ) -> Box<dyn Answers>;
}

/// A part's answers, held until its group's writes are durable.
pub(super) trait Answers: Send {
    /// Gives the answers, or the error that kept them from being durable.
    fn give(self: Box<Self>, written: Result<(), &StoreError>);
}

/// Commands of one kind for one worker, with their places in the batch.
pub(super) struct TypedPart<C: ShardCommand> {
    pub(super) commands: Vec<(usize, C)>,
    pub(super) reply: ReplyTo<C::Answer>,
}

impl<C: ShardCommand> Part for TypedPart<C> {
    fn len(&self) -> usize {
        self.commands.len()
    }

    fn refuse(self: Box<Self>, error: &StoreError) {
        let slots = self.commands.iter().map(|(slot, _)| *slot).collect();
        self.reply.send(Err((slots, error.clone())));
    }

    fn run(
        self: Box<Self>,
        shard: &mut Shard,
        now: Timestamp,
        mut writes: Option<&mut Writes>,
    ) -> Box<dyn Answers> {
        let TypedPart { commands, reply } = *self;
        let answers = commands
            .into_iter()
            .map(|(slot, command)| (slot, command.run(shard, now, writes.as_deref_mut())))
            .collect();
        Box::new(Answered { answers, reply })
    }
}

struct Answered<A> {
    answers: Vec<(usize, A)>,
    reply: ReplyTo<A>,
}

impl<A: Send> Answers for Answered<A> {
    fn give(self: Box<Self>, written: Result<(), &StoreError>) {
        let Answered { answers, reply } = *self;
        reply.send(match written {
            Ok(()) => Ok(answers),
            Err(error) => Err((
                answers.into_iter().map(|(slot, _)| slot).collect(),
                error.clone(),
            )),
        });
    }
}

/// Each command's answer put back where its batch had it, as the workers' parts come in.
pub(super) struct Ordered<A>(Vec<Option<Result<A, StoreError>>>);

impl<A> Ordered<A> {
    pub(super) fn new(total: usize) -> Ordered<A> {
        Ordered((0..total).map(|_| None).collect())
    }

    pub(super) fn take(&mut self, part: Replies<A>) {
        match part {
            Ok(part) => {
                for (slot, answer) in part {
                    self.0[slot] = Some(Ok(answer));
                }
            }
            Err((slots, error)) => {
                for slot in slots {
                    self.0[slot] = Some(Err(error.clone()));
                }
            }
        }
    }

    /// The answers in order; a command whose worker never answered (it stopped first) was
    /// not written.
    pub(super) fn finish(self) -> Vec<Result<A, StoreError>> {
        self.0
            .into_iter()
            .map(|answer| answer.unwrap_or(Err(StoreError::Stopped)))
            .collect()
    }
}

/// A batch handed to the workers whose answers have not been collected yet.
pub struct Pending<A> {
    /// Closed once every worker given a part has answered it (or dropped it, stopping).
    pub(super) replies: Receiver<Replies<A>>,
    pub(super) total: usize,
}

impl<A> Pending<A> {
    /// Waits for every worker's part; each command's answer, in the order the batch was sent
    /// in, or the error that kept its shard's part from becoming durable (the other shards'
    /// parts may well be durable: each shard commits on its own).
    pub fn wait_each(self) -> Vec<Result<A, StoreError>> {
        let mut ordered = Ordered::new(self.total);
        for part in self.replies.iter() {
            ordered.take(part);
        }
        ordered.finish()
    }

    /// Like [`Pending::wait_each`], failing as a whole if any part failed.
    pub fn wait(self) -> Result<Vec<A>, StoreError> {
        self.wait_each().into_iter().collect()
    }
}

/// Like [`Pending`], for an async task: each worker's part answers on its own oneshot.
pub struct PendingTask<A> {
    pub(super) parts: Vec<tokio::sync::oneshot::Receiver<Replies<A>>>,
    pub(super) total: usize,
}

impl<A> PendingTask<A> {
    /// As [`Pending::wait_each`], without blocking a thread.
    pub async fn wait_each(self) -> Vec<Result<A, StoreError>> {
        let mut ordered = Ordered::new(self.total);
        for part in self.parts {
            if let Ok(part) = part.await {
                ordered.take(part);
            }
        }
        ordered.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_never_answered_reads_as_not_written() {
        let mut ordered = Ordered::new(3);
        ordered.take(Ok(vec![(2, "answered")]));
        let answers = ordered.finish();
        assert!(matches!(answers[0], Err(StoreError::Stopped)));
        assert!(matches!(answers[1], Err(StoreError::Stopped)));
        assert!(matches!(answers[2], Ok("answered")));
    }
}
