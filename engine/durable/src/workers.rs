//! The shards on worker threads: each thread owns one shard and takes batches of commands from a
//! bounded crossbeam channel, so a person's commands are applied in order, without locks, by
//! the one thread that owns them.
//!
//! Callers submit a batch; it is split by owning shard, each part is sent to its worker, and the
//! replies come back in the caller's order, to a waiting thread ([`ShardPool::send`]) or to an
//! async task ([`ShardPool::send_to_task`]), so that the HTTP handlers hand their sends to the
//! shards with no thread in between. A full channel blocks the caller (backpressure); a worker
//! takes every batch waiting (up to [`GROUP_COMMANDS`] commands) and makes them one commit; a
//! worker with nothing to do ticks its shard every [`IDLE_TICK`] so counted recipients expire
//! and sketches slide even when no traffic arrives.
//!
//! With a persistence stage ([`ShardPool::start_persistent`]) a worker turns each group into
//! writes (changed contacts, accepted messages, idempotency records, ledger counts) and gives
//! them to its shard's committer (`commit::Committer`) (written on the worker's thread when small, by the
//! committer thread when large); the replies are released only once those writes are synced.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::commit::{wait_before_group, CommitJob, Committer, Durability};
use crate::message::DueMessage;
use crate::outcome::{record_outcome, Followup, LedgerDeltas};
use crate::release_queue::ReleaseQueue;
use crate::submission::Prepared;
use wagate_rules::clock::{Clock, Timestamp, SECS_PER_HOUR};
use wagate_rules::contact_events::{
    ConsentChange, ContactView, FailedSend, FailureEffect, FailureReversal, InboundEffect,
    InboundMessage,
};
use wagate_rules::decision::{Decision, DeferReason, Refusal, SendRequest};
use wagate_rules::hash::mix64;
use wagate_rules::ids::{Msisdn, PhoneNumberId};
use wagate_rules::inline_engine::Engine;
use wagate_rules::price::Ledger;
use wagate_rules::registry::{Registry, RegistryError};
use wagate_rules::shard::Shard;
use wagate_rules::shard_context::{shard_for, Core};
use wagate_rules::sketch::hll::index_and_rank;
use wagate_rules::state::contact::{ConsentSource, ContactRecord};
use wagate_rules::state::contact_table::ContactKey;
use wagate_rules::usage::Usage;
use wagate_store::keys::{contact_key, encode_contact};
use wagate_store::{Batch, Family, StoreError};

pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// Batches waiting per worker before submitters block. Single requests come one batch each,
/// so this is about how many requests may wait on one shard; the server bounds what it admits
/// (in messages) long before the channels would.
pub const QUEUE_BATCHES: usize = 1_024;
/// Commands a worker takes into one group (one commit) at most, bounding the latency a group
/// adds to its first batch.
pub const GROUP_COMMANDS: usize = 4_096;

#[derive(Debug, Clone)]
pub enum Command {
    Decide(SendRequest),
    /// A durable send: decided, and if accepted written with its message before the reply.
    Submit(Box<Prepared>),
    Inbound(InboundMessage),
    Consent {
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
    },
    DeliveryFailed {
        number: PhoneNumberId,
        person: Msisdn,
        code: u32,
    },
    /// A send that failed for good: its price and its recipient's slot given back.
    SendFailed(FailedSend),
    /// Reads a person's record for a number (consent, window); changes nothing.
    Contact {
        number: PhoneNumberId,
        person: Msisdn,
    },
}

impl Command {
    fn person(&self) -> Msisdn {
        match self {
            Command::Decide(request) => request.to,
            Command::Submit(prepared) => prepared.submission.request.to,
            Command::Inbound(message) => message.from,
            Command::SendFailed(failed) => failed.to,
            Command::Consent { person, .. }
            | Command::DeliveryFailed { person, .. }
            | Command::Contact { person, .. } => *person,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Decision(Decision),
    Submitted { decision: Decision, message_id: u64 },
    Inbound(Result<InboundEffect, Refusal>),
    Consent(Result<(), Refusal>),
    DeliveryFailed(Result<FailureEffect, Refusal>),
    SendFailed(Option<FailureReversal>),
    Contact(Option<ContactView>),
}

/// One worker's answers for its part of a batch, or why that part could not be made durable.
type Replies = Result<Vec<(usize, Reply)>, (Vec<usize>, StoreError)>;

/// Where a worker answers its part of a batch: a thread waiting on a channel shared by the
/// batch's parts, or an async task waiting on this part's own oneshot.
enum ReplyTo {
    Thread(Sender<Replies>),
    Task(tokio::sync::oneshot::Sender<Replies>),
    /// Commands told through a [`PoolTeller`]: nobody waits for their answers.
    Nobody,
}

impl ReplyTo {
    /// The submitter may have gone away; its answers are then nobody's.
    fn send(self, replies: Replies) {
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

/// A batch's part for one worker.
type Part = (Vec<(usize, Command)>, ReplyTo);

enum Work {
    Commands {
        commands: Vec<(usize, Command)>,
        reply: ReplyTo,
    },
    Control(Control),
}

/// Work that asks a shard about itself rather than about a person.
enum Control {
    Refresh {
        number: PhoneNumberId,
        done: Sender<()>,
    },
    Ledger {
        reply: Sender<Ledger>,
    },
    /// Brings every scope of the shard up to now (expirations, sketches, due tier changes).
    Tick {
        done: Sender<()>,
    },
    /// Counts the shard's persons counted in a scope since a moment (exact).
    CountCounted {
        scope_key: u32,
        since: wagate_rules::clock::Secs,
        reply: Sender<u64>,
    },
}

/// What a persisted worker needs: its committer, and where committed messages go.
struct Persist {
    durability: Arc<Durability>,
    committer: Committer,
    onward: Onward,
}

/// Where the durable engine's committed work goes next: accepted messages to the dispatcher,
/// queued ones to the releaser's index.
#[derive(Clone)]
pub struct Onward {
    pub dispatch: Sender<DueMessage>,
    pub release: Arc<ReleaseQueue>,
}

/// Where a persisted worker collects a batch's writes.
#[derive(Default)]
struct Writes {
    batch: Batch,
    accepted: Vec<DueMessage>,
    queued: Vec<DueMessage>,
    ledger: LedgerDeltas,
}

fn process(
    shard: &mut Shard,
    command: Command,
    now: Timestamp,
    writes: Option<&mut Writes>,
) -> Reply {
    match command {
        Command::Decide(request) => Reply::Decision(shard.decide(&request, now)),
        Command::Submit(prepared) => {
            let mut decision = shard.decide(&prepared.submission.request, now);
            if let Decision::Deferred {
                until,
                reason: DeferReason::Throughput,
            } = &mut decision
            {
                if prepared.submission.queue_when_deferred {
                    let number = prepared.submission.request.number;
                    *until = shard.queue_turn(number, now).unwrap_or(*until);
                }
            }
            let message_id = prepared.message_id;
            if let Some(writes) = writes {
                match record_outcome(
                    *prepared,
                    &decision,
                    now,
                    &mut writes.batch,
                    &mut writes.ledger,
                ) {
                    Some(Followup::Dispatch(due)) => writes.accepted.push(due),
                    Some(Followup::Release(due)) => writes.queued.push(due),
                    None => {}
                }
            }
            Reply::Submitted {
                decision,
                message_id,
            }
        }
        Command::Inbound(message) => Reply::Inbound(shard.inbound(&message, now)),
        Command::Consent {
            number,
            person,
            change,
            source,
        } => Reply::Consent(shard.consent(number, person, change, source, now)),
        Command::DeliveryFailed {
            number,
            person,
            code,
        } => Reply::DeliveryFailed(shard.delivery_failed(number, person, code, now)),
        Command::SendFailed(failed) => Reply::SendFailed(shard.send_failed(&failed, now)),
        Command::Contact { number, person } => Reply::Contact(shard.contact(number, person, now)),
    }
}

/// Puts every journaled contact record into `batch`, keyed by the register that places it.
fn write_contacts(journal: &mut Vec<(ContactKey, ContactRecord)>, batch: &mut Batch) {
    for (key, record) in journal.drain(..) {
        let register = index_and_rank(mix64(key.person)).0 as u16;
        batch.put(
            Family::Contacts,
            contact_key(register, &key),
            encode_contact(&record),
        );
    }
}

/// Applies a group of parts (each from its own batch) and answers each part; with persistence,
/// after the group's writes are durable, as one commit.
fn run_commands(
    shard: &mut Shard,
    group: Vec<Part>,
    now: Timestamp,
    persist: Option<&Persist>,
    journal: &mut Vec<(ContactKey, ContactRecord)>,
) {
    let Some(persist) = persist else {
        for (commands, reply) in group {
            let replies = commands
                .into_iter()
                .map(|(slot, command)| (slot, process(shard, command, now, None)))
                .collect();
            reply.send(Ok(replies));
        }
        return;
    };
    if let Some(error) = persist.durability.failure() {
        // The disk is behind memory: change nothing more, say why.
        for (commands, reply) in group {
            let slots = commands.iter().map(|(slot, _)| *slot).collect();
            reply.send(Err((slots, error.clone())));
        }
        return;
    }
    let mut writes = Writes::default();
    let commands: usize = group.iter().map(|(commands, _)| commands.len()).sum();
    let answered: Vec<(Vec<(usize, Reply)>, ReplyTo)> = group
        .into_iter()
        .map(|(commands, reply)| {
            let replies = commands
                .into_iter()
                .map(|(slot, command)| (slot, process(shard, command, now, Some(&mut writes))))
                .collect();
            (replies, reply)
        })
        .collect();
    shard.drain_journal(journal);
    let Writes {
        mut batch,
        accepted,
        queued,
        mut ledger,
    } = writes;
    write_contacts(journal, &mut batch);
    ledger.write(&mut batch);
    let onward = persist.onward.clone();
    let done = Box::new(move |result: Result<(), StoreError>| {
        if result.is_ok() {
            for message in accepted {
                let _ = onward.dispatch.send(message);
            }
            for message in queued {
                onward.release.insert(message.send_at, message.id);
            }
        }
        for (replies, reply) in answered {
            reply.send(match &result {
                Ok(()) => Ok(replies),
                Err(error) => Err((
                    replies.into_iter().map(|(slot, _)| slot).collect(),
                    error.clone(),
                )),
            });
        }
    });
    persist
        .committer
        .commit(CommitJob { batch, done }, commands);
}

/// Takes the batches waiting behind `first` into one group, up to [`GROUP_COMMANDS`]; control
/// work found on the way is handed back, to run after the group.
fn gather(first: Part, queue: &Receiver<Work>) -> (Vec<Part>, Option<Control>) {
    let mut size = first.0.len();
    let mut group = vec![first];
    while size < GROUP_COMMANDS {
        match queue.try_recv() {
            Ok(Work::Commands { commands, reply }) => {
                size += commands.len();
                group.push((commands, reply));
            }
            Ok(Work::Control(control)) => return (group, Some(control)),
            Err(_) => break,
        }
    }
    (group, None)
}

fn run_worker(
    mut shard: Shard,
    core: Arc<Core>,
    clock: Arc<dyn Clock>,
    queue: Receiver<Work>,
    persist: Option<Persist>,
) -> Shard {
    let mut ticked_hour = 0;
    let mut journal = Vec::new();
    let mut last_commit: Option<Instant> = None;
    loop {
        let work = match queue.recv_timeout(IDLE_TICK) {
            Ok(work) => work,
            Err(RecvTimeoutError::Timeout) => {
                shard.tick(clock.now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return shard,
        };
        if let (Some(persist), Work::Commands { commands, .. }) = (&persist, &work) {
            let since_last = last_commit.map(|at| at.elapsed());
            let interval = persist.durability.commit_interval;
            if let Some(wait) = wait_before_group(since_last, interval, commands.len()) {
                std::thread::sleep(wait);
            }
        }
        let now = clock.now();
        let hour = now.secs() / SECS_PER_HOUR;
        if hour != ticked_hour {
            shard.tick(now);
            ticked_hour = hour;
        } else {
            shard.expire_due(now);
        }
        match work {
            Work::Commands { commands, reply } => {
                let (group, control) = gather((commands, reply), &queue);
                run_commands(&mut shard, group, now, persist.as_ref(), &mut journal);
                last_commit = Some(Instant::now());
                if let Some(control) = control {
                    run_control(&mut shard, &core, control, now);
                }
            }
            Work::Control(control) => run_control(&mut shard, &core, control, now),
        }
    }
}

fn run_control(shard: &mut Shard, core: &Core, control: Control, now: Timestamp) {
    match control {
        Control::Refresh { number, done } => {
            if let Some(state) = core.registry.number(number) {
                shard.refresh_scope(&state.scope, now);
            }
            let _ = done.send(());
        }
        Control::Ledger { reply } => {
            let _ = reply.send(shard.ledger().clone());
        }
        Control::Tick { done } => {
            shard.tick(now);
            let _ = done.send(());
        }
        Control::CountCounted {
            scope_key,
            since,
            reply,
        } => {
            let _ = reply.send(shard.count_counted_since(scope_key, since));
        }
    }
}

fn hand_out(
    queues: &[Sender<Work>],
    commands: Vec<Command>,
    mut reply_to: impl FnMut() -> ReplyTo,
) {
    let shards = queues.len();
    let mut parts: Vec<Vec<(usize, Command)>> = (0..shards).map(|_| Vec::new()).collect();
    for (slot, command) in commands.into_iter().enumerate() {
        parts[shard_for(command.person().digits(), shards)].push((slot, command));
    }
    for (queue, part) in queues.iter().zip(parts) {
        if part.is_empty() {
            continue;
        }
        queue
            .send(Work::Commands {
                commands: part,
                reply: reply_to(),
            })
            .expect("shard workers live as long as their queues");
    }
}

/// Hands a [`ShardPool`] commands without waiting for their answers, and without keeping the
/// pool from stopping: once it has stopped, what is told is dropped.
#[derive(Clone)]
pub struct PoolTeller {
    queues: std::sync::Weak<Vec<Sender<Work>>>,
}

impl PoolTeller {
    /// Hands `commands` to their shards; false when the pool has stopped.
    pub fn tell(&self, commands: Vec<Command>) -> bool {
        match self.queues.upgrade() {
            Some(queues) => {
                hand_out(&queues, commands, || ReplyTo::Nobody);
                true
            }
            None => false,
        }
    }
}

/// Each command's reply put back where its batch had it, as the workers' parts come in.
struct Ordered(Vec<Option<Result<Reply, StoreError>>>);

impl Ordered {
    fn new(total: usize) -> Ordered {
        Ordered((0..total).map(|_| None).collect())
    }

    fn take(&mut self, part: Replies) {
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

    /// The replies in order; a command whose worker never answered (it stopped first) was
    /// not written.
    fn finish(self) -> Vec<Result<Reply, StoreError>> {
        self.0
            .into_iter()
            .map(|answer| answer.unwrap_or(Err(StoreError::Stopped)))
            .collect()
    }
}

/// A batch handed to the workers whose replies have not been collected yet.
pub struct Pending {
    /// Closed once every worker given a part has answered it (or dropped it, stopping).
    replies: Receiver<Replies>,
    total: usize,
}

impl Pending {
    /// Waits for every worker's part; each command's reply, in the order the batch was sent
    /// in, or the error that kept its shard's part from becoming durable (the other shards'
    /// parts may well be durable: each shard commits on its own).
    pub fn wait_each(self) -> Vec<Result<Reply, StoreError>> {
        let mut ordered = Ordered::new(self.total);
        for part in self.replies.iter() {
            ordered.take(part);
        }
        ordered.finish()
    }

    /// Like [`Pending::wait_each`], failing as a whole if any part failed.
    pub fn wait(self) -> Result<Vec<Reply>, StoreError> {
        self.wait_each().into_iter().collect()
    }
}

/// Like [`Pending`], for an async task: each worker's part answers on its own oneshot.
pub struct PendingTask {
    parts: Vec<tokio::sync::oneshot::Receiver<Replies>>,
    total: usize,
}

impl PendingTask {
    /// As [`Pending::wait_each`], without blocking a thread.
    pub async fn wait_each(self) -> Vec<Result<Reply, StoreError>> {
        let mut ordered = Ordered::new(self.total);
        for part in self.parts {
            if let Ok(part) = part.await {
                ordered.take(part);
            }
        }
        ordered.finish()
    }
}

pub struct ShardPool {
    core: Arc<Core>,
    clock: Arc<dyn Clock>,
    /// Shared only weakly (with [`PoolTeller`]s): dropping it is what stops the workers.
    queues: Arc<Vec<Sender<Work>>>,
    workers: Vec<JoinHandle<Shard>>,
    committers: Vec<JoinHandle<()>>,
}

impl ShardPool {
    /// Moves an engine's shards onto one thread each.
    pub fn start(engine: Engine) -> ShardPool {
        Self::spawn(engine, None)
    }

    /// Like [`ShardPool::start`], with a committer thread per shard writing through
    /// `durability`; accepted and queued messages go `onward` once durable.
    pub fn start_persistent(
        engine: Engine,
        durability: Arc<Durability>,
        onward: Onward,
    ) -> ShardPool {
        Self::spawn(engine, Some((durability, onward)))
    }

    fn spawn(engine: Engine, persistence: Option<(Arc<Durability>, Onward)>) -> ShardPool {
        let (core, shards, clock) = engine.into_parts();
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        let mut committers = Vec::new();
        for mut shard in shards {
            let index = shard.index();
            let persist = persistence.as_ref().map(|(durability, onward)| {
                let (committer, thread) = Committer::start(
                    format!("wagate-commit-{index}"),
                    durability.clone(),
                    core.clone(),
                );
                committers.push(thread);
                shard.enable_journal();
                Persist {
                    durability: durability.clone(),
                    committer,
                    onward: onward.clone(),
                }
            });
            let (sender, receiver) = bounded(QUEUE_BATCHES);
            let (core, clock) = (core.clone(), clock.clone());
            let handle = std::thread::Builder::new()
                .name(format!("wagate-shard-{index}"))
                .spawn(move || run_worker(shard, core, clock, receiver, persist))
                .expect("spawning a shard worker thread");
            queues.push(sender);
            workers.push(handle);
        }
        ShardPool {
            core,
            clock,
            queues: Arc::new(queues),
            workers,
            committers,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub fn shards(&self) -> usize {
        self.queues.len()
    }

    /// Runs a batch of commands; replies come back in the order of `commands`.
    pub fn submit(&self, commands: Vec<Command>) -> Result<Vec<Reply>, StoreError> {
        self.send(commands).wait()
    }

    /// Hands a batch to the workers and returns at once; [`Pending::wait`] collects the
    /// replies. Keeping several batches in flight keeps every worker busy.
    pub fn send(&self, commands: Vec<Command>) -> Pending {
        let total = commands.len();
        let (reply, replies) = bounded(self.queues.len());
        self.hand_out(commands, || ReplyTo::Thread(reply.clone()));
        Pending { replies, total }
    }

    /// Like [`ShardPool::send`] for an async task: [`PendingTask::wait_each`] awaits the
    /// replies. Blocks only while a worker's channel is full.
    pub fn send_to_task(&self, commands: Vec<Command>) -> PendingTask {
        let total = commands.len();
        let mut parts = Vec::new();
        self.hand_out(commands, || {
            let (reply, part) = tokio::sync::oneshot::channel();
            parts.push(part);
            ReplyTo::Task(reply)
        });
        PendingTask { parts, total }
    }

    /// Splits `commands` by owning shard and sends each non-empty part to its worker, to be
    /// answered where `reply_to` says.
    fn hand_out(&self, commands: Vec<Command>, reply_to: impl FnMut() -> ReplyTo) {
        hand_out(&self.queues, commands, reply_to);
    }

    /// A handle that hands this pool commands whose answers nobody waits for, from threads
    /// that must not keep the pool alive (the dispatcher's lanes).
    pub fn teller(&self) -> PoolTeller {
        PoolTeller {
            queues: Arc::downgrade(&self.queues),
        }
    }

    /// Asks every worker and waits for all their answers.
    fn ask_all<T>(&self, work: impl Fn(Sender<T>) -> Work) -> Vec<T> {
        let (answer, answers) = bounded(self.queues.len());
        for queue in self.queues.iter() {
            queue
                .send(work(answer.clone()))
                .expect("shard workers live as long as the pool");
        }
        self.queues
            .iter()
            .map(|_| answers.recv().expect("every worker answers"))
            .collect()
    }

    /// The limit facts of the number's scope, after every shard has brought it up to now.
    pub fn usage(&self, number: PhoneNumberId) -> Result<Usage, RegistryError> {
        let state = self
            .core
            .registry
            .number(number)
            .ok_or(RegistryError::UnknownNumber(number))?;
        self.ask_all(|done| Work::Control(Control::Refresh { number, done }));
        self.confirm_projections();
        let now = self.clock.now().secs();
        state.scope.apply_due(&self.core.profile, now);
        Ok(Usage::of(
            &self.core.profile,
            &state.scope,
            state.restricted_until(),
            now,
        ))
    }

    /// Has every shard bring all its scopes up to now, and waits for them; then applies the
    /// projected upgrades that came due, where the operator allows that.
    pub fn catch_up(&self) {
        self.ask_all(|done| Work::Control(Control::Tick { done }));
        self.confirm_projections();
    }

    /// Where the operator lets wagate apply its own upgrade projections: each that came due
    /// is applied if the exact 7-day count of its scope (counted on every shard) earns it.
    pub fn confirm_projections(&self) {
        let core = &self.core;
        if !core.apply_projected_upgrades {
            return;
        }
        let now = self.clock.now().secs();
        for (_, scope) in core.registry.scopes() {
            if scope.projection_due(&core.profile, now).is_none() {
                continue;
            }
            let since = now.saturating_sub(wagate_rules::shard_context::WEEK_SECS - 1);
            let exact: u64 = self
                .ask_all(|reply| {
                    Work::Control(Control::CountCounted {
                        scope_key: scope.key,
                        since,
                        reply,
                    })
                })
                .into_iter()
                .sum();
            scope.confirm_projection(&core.profile, exact, now);
        }
    }

    /// The in-memory price ledger (since start) of all shards.
    pub fn ledger(&self) -> Ledger {
        let mut whole = Ledger::default();
        for part in self.ask_all(|reply| Work::Control(Control::Ledger { reply })) {
            whole.merge(&part);
        }
        whole
    }

    /// Stops the workers after the work already queued, then their committers (which finish
    /// every write handed to them), and returns the shards.
    pub fn shutdown(self) -> Vec<Shard> {
        drop(self.queues);
        let shards = self
            .workers
            .into_iter()
            .map(|worker| worker.join().expect("a shard worker panicked"))
            .collect();
        for committer in self.committers {
            committer.join().expect("a committer panicked");
        }
        shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(count: usize) -> (Work, Receiver<Replies>) {
        let (reply, replies) = bounded(1);
        let commands = (0..count)
            .map(|slot| {
                let command = Command::Contact {
                    number: PhoneNumberId(1),
                    person: Msisdn::from_digits(15_550_000_000 + slot as u64).unwrap(),
                };
                (slot, command)
            })
            .collect();
        let work = Work::Commands {
            commands,
            reply: ReplyTo::Thread(reply),
        };
        (work, replies)
    }

    fn part(work: Work) -> Part {
        match work {
            Work::Commands { commands, reply } => (commands, reply),
            Work::Control(_) => panic!("not commands"),
        }
    }

    #[test]
    fn a_worker_groups_the_batches_waiting_and_stops_at_control_work() {
        let (queue, incoming) = bounded(QUEUE_BATCHES);
        let (first, _) = commands(3);
        for size in [2, 5] {
            queue.send(commands(size).0).unwrap();
        }
        let (done, _) = bounded(1);
        queue
            .send(Work::Control(Control::Ledger { reply: done }))
            .unwrap();
        queue.send(commands(1).0).unwrap();
        let (group, control) = gather(part(first), &incoming);
        let sizes: Vec<usize> = group.iter().map(|(commands, _)| commands.len()).collect();
        assert_eq!(sizes, [3, 2, 5]);
        assert!(matches!(control, Some(Control::Ledger { .. })));
        // What came after the control work waits for the next round.
        let (group, control) = gather(part(incoming.try_recv().unwrap()), &incoming);
        assert_eq!(group.len(), 1);
        assert!(control.is_none());
    }

    #[test]
    fn a_group_stops_growing_at_its_command_bound() {
        let (queue, incoming) = bounded(QUEUE_BATCHES);
        let (first, _) = commands(GROUP_COMMANDS - 10);
        for _ in 0..3 {
            queue.send(commands(10).0).unwrap();
        }
        let (group, _) = gather(part(first), &incoming);
        assert_eq!(group.len(), 2, "the bound reached, the rest waits");
        assert_eq!(incoming.len(), 2);
    }

    #[test]
    fn a_part_never_answered_reads_as_not_written() {
        let mut ordered = Ordered::new(3);
        ordered.take(Ok(vec![(2, Reply::Contact(None))]));
        let replies = ordered.finish();
        assert!(matches!(replies[0], Err(StoreError::Stopped)));
        assert!(matches!(replies[1], Err(StoreError::Stopped)));
        assert!(matches!(replies[2], Ok(Reply::Contact(None))));
    }
}
