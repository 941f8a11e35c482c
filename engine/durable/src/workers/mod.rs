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

use std::cell::Cell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

mod commands;
mod parts;

pub use commands::{
    BusinessBlock, Command, Consent, ContactRead, Decide, DeliveryFailed, Erase, FollowStatus,
    FreeEntryUntil, Inbound, Reply, Screen, SendFailed, ShardCommand,
};
pub(crate) use commands::{Submit, Submitted};
pub use parts::{Pending, PendingTask};

use crate::commit::{wait_before_group, CommitJob, Committer, Durability};
use crate::message::DueMessage;
use crate::outcome::LedgerDeltas;
use crate::release_queue::ReleaseQueue;
use parts::{Answers, Part, ReplyTo, TypedPart};
use wagate_rules::clock::{Clock, Timestamp, SECS_PER_HOUR};
use wagate_rules::hash::mix64;
use wagate_rules::ids::PhoneNumberId;
use wagate_rules::inline_engine::Engine;
use wagate_rules::price::Ledger;
use wagate_rules::registry::{Registry, RegistryError};
use wagate_rules::shard::Shard;
use wagate_rules::shard_context::{shard_for, Core};
use wagate_rules::sketch::hll::index_and_rank;
use wagate_rules::state::contact::ContactRecord;
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

enum Work {
    /// A batch's part: commands for this worker's persons.
    Commands(Box<dyn Part>),
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
    /// The shard's persons counted in a scope, by the hour of their latest counted send.
    CountedByHour {
        scope_key: u32,
        from: wagate_rules::clock::Secs,
        hours: usize,
        reply: Sender<Vec<u64>>,
    },
}

/// What a persisted worker needs: its committer, and where committed messages go.
struct Persist {
    /// The ledger's markets are written by name (the profile's rate cards); consent events
    /// under their number's business (the registry).
    core: Arc<Core>,
    durability: Arc<Durability>,
    committer: Committer,
    onward: Onward,
    /// Bytes of writes per command in the last group: the next group's batch is made that big
    /// at once (grown by doubling, a group of queued sends was copied over ten times).
    bytes_per_command: Cell<usize>,
}

/// The most a group's batch is sized ahead for one command (a larger send still fits: the
/// batch grows).
const BYTES_AHEAD_PER_COMMAND: usize = 4 << 10;

/// Where the durable engine's committed work goes next: accepted messages to the dispatcher,
/// queued ones to the releaser's index.
#[derive(Clone)]
pub struct Onward {
    pub dispatch: Sender<DueMessage>,
    pub release: Arc<ReleaseQueue>,
    /// Writes what tenants hear of queued sends with their decisions.
    pub news: crate::tenant_news::NewsWriters,
}

/// Where a persisted worker collects a group's writes: its commands' records, the messages
/// to dispatch or queue once they are durable, and the ledger's counts.
pub struct Writes {
    batch: Batch,
    accepted: Vec<DueMessage>,
    queued: Vec<DueMessage>,
    ledger: LedgerDeltas,
    fates: Vec<crate::tenant_news::QueuedSendFate>,
}

impl Writes {
    /// Room for `commands` commands' writes at `bytes_per_command`, and their messages.
    fn sized(commands: usize, bytes_per_command: usize) -> Writes {
        Writes {
            batch: Batch::with_capacity(commands * bytes_per_command, commands),
            accepted: Vec::with_capacity(commands),
            queued: Vec::with_capacity(commands),
            ledger: LedgerDeltas::default(),
            fates: Vec::with_capacity(commands),
        }
    }
}

/// Puts every journaled contact record into `batch`, keyed by the register that places it.
fn write_contacts(journal: &mut Vec<(ContactKey, ContactRecord)>, batch: &mut Batch) {
    for (key, record) in journal.drain(..) {
        let register = index_and_rank(mix64(key.person)).0 as u16;
        let key = contact_key(register, &key);
        if record == ContactRecord::default() {
            // Says nothing (an erased person's): the same as no record, and none is kept.
            batch.delete(Family::Contacts, key);
        } else {
            batch.put(Family::Contacts, key, encode_contact(&record));
        }
    }
}

/// Applies a group of parts (each from its own batch) and answers each part; with persistence,
/// after the group's writes are durable, as one commit.
fn run_commands(
    shard: &mut Shard,
    group: Vec<Box<dyn Part>>,
    now: Timestamp,
    persist: Option<&Persist>,
    journal: &mut Vec<(ContactKey, ContactRecord)>,
) {
    let Some(persist) = persist else {
        for part in group {
            part.run(shard, now, None).give(Ok(()));
        }
        return;
    };
    if let Some(error) = persist.durability.failure() {
        // The disk is behind memory: change nothing more, say why.
        for part in group {
            part.refuse(&error);
        }
        return;
    }
    let commands: usize = group.iter().map(|part| part.len()).sum();
    let mut writes = Writes::sized(commands, persist.bytes_per_command.get());
    let answered: Vec<Box<dyn Answers>> = group
        .into_iter()
        .map(|part| part.run(shard, now, Some(&mut writes)))
        .collect();
    shard.drain_journal(journal);
    let Writes {
        mut batch,
        accepted,
        queued,
        mut ledger,
        fates,
    } = writes;
    let writer = persist.onward.news.get();
    let told: usize = writer.map_or(0, |writer| {
        fates
            .iter()
            .map(|fate| writer.write(crate::tenant_news::News::QueuedSend(fate), &mut batch))
            .sum()
    });
    write_contacts(journal, &mut batch);
    persist
        .bytes_per_command
        .set((batch.bytes() / commands.max(1)).min(BYTES_AHEAD_PER_COMMAND));
    ledger.write(&mut batch, &persist.core.profile.rate_cards);
    let mut consent_events = Vec::new();
    shard.drain_consent_log(&mut consent_events);
    crate::consent_history::write(&mut batch, &consent_events, &persist.core.registry);
    let onward = persist.onward.clone();
    let done = Box::new(move |result: Result<(), StoreError>| {
        if result.is_ok() {
            for message in accepted {
                let _ = onward.dispatch.send(message);
            }
            if !queued.is_empty() {
                onward
                    .release
                    .insert_all(queued.iter().map(|message| (message.send_at, message.id)));
            }
            if let Some(writer) = onward.news.get().filter(|_| told > 0) {
                writer.committed(told);
            }
        }
        for answers in answered {
            answers.give(result.as_ref().map(|_| ()));
        }
    });
    persist
        .committer
        .commit(CommitJob { batch, done }, commands);
}

/// Takes the batches waiting behind `first` into one group, up to [`GROUP_COMMANDS`]; control
/// work found on the way is handed back, to run after the group.
fn gather(first: Box<dyn Part>, queue: &Receiver<Work>) -> (Vec<Box<dyn Part>>, Option<Control>) {
    let mut size = first.len();
    let mut group = vec![first];
    while size < GROUP_COMMANDS {
        match queue.try_recv() {
            Ok(Work::Commands(part)) => {
                size += part.len();
                group.push(part);
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
        if let (Some(persist), Work::Commands(part)) = (&persist, &work) {
            let since_last = last_commit.map(|at| at.elapsed());
            let interval = persist.durability.commit_interval;
            if let Some(wait) = wait_before_group(since_last, interval, part.len()) {
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
            Work::Commands(part) => {
                let (group, control) = gather(part, &queue);
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
        Control::CountedByHour {
            scope_key,
            from,
            hours,
            reply,
        } => {
            let _ = reply.send(shard.counted_by_hour(scope_key, from, hours));
        }
    }
}

/// Splits `commands` by owning shard and sends each non-empty part to its worker, to be
/// answered where `reply_to` says.
fn hand_out<C: ShardCommand>(
    queues: &[Sender<Work>],
    commands: Vec<C>,
    mut reply_to: impl FnMut() -> ReplyTo<C::Answer>,
) {
    let shards = queues.len();
    let mut parts: Vec<Vec<(usize, C)>> = (0..shards).map(|_| Vec::new()).collect();
    for (slot, command) in commands.into_iter().enumerate() {
        parts[shard_for(command.person().digits(), shards)].push((slot, command));
    }
    for (queue, commands) in queues.iter().zip(parts) {
        if commands.is_empty() {
            continue;
        }
        let part = TypedPart {
            commands,
            reply: reply_to(),
        };
        queue
            .send(Work::Commands(Box::new(part)))
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
    pub fn tell<C: ShardCommand>(&self, commands: Vec<C>) -> bool {
        match self.queues.upgrade() {
            Some(queues) => {
                hand_out(&queues, commands, || ReplyTo::Nobody);
                true
            }
            None => false,
        }
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
                    core: core.clone(),
                    durability: durability.clone(),
                    committer,
                    onward: onward.clone(),
                    bytes_per_command: Cell::new(0),
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

    /// Runs a batch of commands; their answers come back in the order of `commands`.
    pub fn submit<C: ShardCommand>(&self, commands: Vec<C>) -> Result<Vec<C::Answer>, StoreError> {
        self.send(commands).wait()
    }

    /// Runs one command and gives its answer.
    pub fn ask<C: ShardCommand>(&self, command: C) -> Result<C::Answer, StoreError> {
        self.send(vec![command])
            .wait_each()
            .pop()
            .unwrap_or(Err(StoreError::Stopped))
    }

    /// Hands a batch to the workers and returns at once; [`Pending::wait`] collects the
    /// answers. Keeping several batches in flight keeps every worker busy.
    pub fn send<C: ShardCommand>(&self, commands: Vec<C>) -> Pending<C::Answer> {
        let total = commands.len();
        let (reply, replies) = bounded(self.queues.len());
        hand_out(&self.queues, commands, || ReplyTo::Thread(reply.clone()));
        Pending { replies, total }
    }

    /// Like [`ShardPool::send`] for an async task: [`PendingTask::wait_each`] awaits the
    /// answers. Blocks only while a worker's channel is full.
    pub fn send_to_task<C: ShardCommand>(&self, commands: Vec<C>) -> PendingTask<C::Answer> {
        let total = commands.len();
        let mut parts = Vec::new();
        hand_out(&self.queues, commands, || {
            let (reply, part) = tokio::sync::oneshot::channel();
            parts.push(part);
            ReplyTo::Task(reply)
        });
        PendingTask { parts, total }
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

    /// The number's scope's counted recipients by the hour each leaves the rolling 24 h, over
    /// the next 24 hours (hour 0: within the coming hour). A scan of every shard's contacts.
    pub fn capacity_schedule(&self, number: PhoneNumberId) -> Result<Vec<u64>, RegistryError> {
        let state = self
            .core
            .registry
            .number(number)
            .ok_or(RegistryError::UnknownNumber(number))?;
        let scope_key = state.scope.key;
        let now = self.clock.now().secs();
        // Counted at `t`, a recipient leaves at `t + 24 h`: the last day's hours, shifted (one
        // counted now leaves in the last of the 24, one counted a day ago less a second in
        // the first).
        let from = (now + 1).saturating_sub(wagate_rules::shard_context::LIMIT_WINDOW_SECS);
        let mut total = vec![0; 24];
        for part in self.ask_all(|reply| {
            Work::Control(Control::CountedByHour {
                scope_key,
                from,
                hours: 24,
                reply,
            })
        }) {
            for (sum, count) in total.iter_mut().zip(part) {
                *sum += count;
            }
        }
        Ok(total)
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

    fn commands(count: usize) -> Work {
        let (reply, _) = bounded(1);
        let commands = (0..count)
            .map(|slot| {
                let command = ContactRead {
                    number: PhoneNumberId(1),
                    person: wagate_rules::ids::Msisdn::from_digits(15_550_000_000 + slot as u64)
                        .unwrap(),
                };
                (slot, command)
            })
            .collect();
        Work::Commands(Box::new(TypedPart {
            commands,
            reply: ReplyTo::Thread(reply),
        }))
    }

    fn part(work: Work) -> Box<dyn Part> {
        match work {
            Work::Commands(part) => part,
            Work::Control(_) => panic!("not commands"),
        }
    }

    #[test]
    fn a_worker_groups_the_batches_waiting_and_stops_at_control_work() {
        let (queue, incoming) = bounded(QUEUE_BATCHES);
        let first = commands(3);
        for size in [2, 5] {
            queue.send(commands(size)).unwrap();
        }
        let (done, _) = bounded(1);
        queue
            .send(Work::Control(Control::Ledger { reply: done }))
            .unwrap();
        queue.send(commands(1)).unwrap();
        let (group, control) = gather(part(first), &incoming);
        let sizes: Vec<usize> = group.iter().map(|part| part.len()).collect();
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
        let first = commands(GROUP_COMMANDS - 10);
        for _ in 0..3 {
            queue.send(commands(10)).unwrap();
        }
        let (group, _) = gather(part(first), &incoming);
        assert_eq!(group.len(), 2, "the bound reached, the rest waits");
        assert_eq!(incoming.len(), 2);
    }
}
