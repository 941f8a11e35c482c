//! The shards on worker threads: each thread owns one shard and takes batches of commands from a
//! bounded crossbeam channel, so a person's commands are applied in order, without locks, by
//! the one thread that owns them.
//!
//! Callers submit a batch; it is split by owning shard, each part is sent to its worker, and the
//! replies come back in the caller's order. A full channel blocks the caller (backpressure); a
//! worker with nothing to do ticks its shard every [`IDLE_TICK`] so counted recipients expire
//! and sketches slide even when no traffic arrives.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::clock::{Clock, SECS_PER_HOUR};
use crate::core::{shard_for, Core};
use crate::decision::{Decision, Refusal, SendRequest};
use crate::engine::Engine;
use crate::events::{ConsentChange, FailureEffect, InboundEffect, InboundMessage};
use crate::ids::{Msisdn, PhoneNumberId};
use crate::price::Ledger;
use crate::registry::{Registry, RegistryError};
use crate::shard::Shard;
use crate::state::contact::ConsentSource;
use crate::usage::Usage;

pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// Batches waiting per worker before submitters block.
pub const QUEUE_BATCHES: usize = 64;

#[derive(Debug, Clone)]
pub enum Command {
    Decide(SendRequest),
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
}

impl Command {
    fn person(&self) -> Msisdn {
        match self {
            Command::Decide(request) => request.to,
            Command::Inbound(message) => message.from,
            Command::Consent { person, .. } | Command::DeliveryFailed { person, .. } => *person,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Decision(Decision),
    Inbound(Result<InboundEffect, Refusal>),
    Consent(Result<(), Refusal>),
    DeliveryFailed(Result<FailureEffect, Refusal>),
}

enum Work {
    Commands {
        commands: Vec<(usize, Command)>,
        reply: Sender<Vec<(usize, Reply)>>,
    },
    Refresh {
        number: PhoneNumberId,
        done: Sender<()>,
    },
    Ledger {
        reply: Sender<Ledger>,
    },
}

pub struct ShardPool {
    core: Arc<Core>,
    clock: Arc<dyn Clock>,
    queues: Vec<Sender<Work>>,
    workers: Vec<JoinHandle<Shard>>,
}

fn run_worker(
    mut shard: Shard,
    core: Arc<Core>,
    clock: Arc<dyn Clock>,
    queue: Receiver<Work>,
) -> Shard {
    let mut ticked_hour = 0;
    loop {
        let work = match queue.recv_timeout(IDLE_TICK) {
            Ok(work) => work,
            Err(RecvTimeoutError::Timeout) => {
                shard.tick(clock.now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return shard,
        };
        let now = clock.now();
        let hour = now.secs() / SECS_PER_HOUR;
        if hour != ticked_hour {
            shard.tick(now);
            ticked_hour = hour;
        }
        match work {
            Work::Commands { commands, reply } => {
                let replies = commands
                    .into_iter()
                    .map(|(slot, command)| {
                        let answer = match command {
                            Command::Decide(request) => {
                                Reply::Decision(shard.decide(&request, now))
                            }
                            Command::Inbound(message) => {
                                Reply::Inbound(shard.inbound(&message, now))
                            }
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
                            } => Reply::DeliveryFailed(
                                shard.delivery_failed(number, person, code, now),
                            ),
                        };
                        (slot, answer)
                    })
                    .collect();
                // The submitter may have gone away; its answers are then nobody's.
                let _ = reply.send(replies);
            }
            Work::Refresh { number, done } => {
                if let Some(state) = core.registry.number(number) {
                    shard.refresh_scope(&state.scope, now);
                }
                let _ = done.send(());
            }
            Work::Ledger { reply } => {
                let _ = reply.send(shard.ledger().clone());
            }
        }
    }
}

impl ShardPool {
    /// Moves an engine's shards onto one thread each.
    pub fn start(engine: Engine) -> ShardPool {
        let (core, shards, clock) = engine.into_parts();
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for shard in shards {
            let (sender, receiver) = bounded(QUEUE_BATCHES);
            let (core, clock) = (core.clone(), clock.clone());
            let name = format!("wagate-shard-{}", shard.index());
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || run_worker(shard, core, clock, receiver))
                .expect("spawning a shard worker thread");
            queues.push(sender);
            workers.push(handle);
        }
        ShardPool {
            core,
            clock,
            queues,
            workers,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    pub fn shards(&self) -> usize {
        self.queues.len()
    }

    /// Runs a batch of commands; replies come back in the order of `commands`.
    pub fn submit(&self, commands: Vec<Command>) -> Vec<Reply> {
        let total = commands.len();
        let shards = self.queues.len();
        let mut parts: Vec<Vec<(usize, Command)>> = (0..shards).map(|_| Vec::new()).collect();
        for (slot, command) in commands.into_iter().enumerate() {
            parts[shard_for(command.person().digits(), shards)].push((slot, command));
        }
        let (reply, replies) = bounded(shards);
        let mut expected = 0;
        for (queue, part) in self.queues.iter().zip(parts) {
            if part.is_empty() {
                continue;
            }
            expected += 1;
            queue
                .send(Work::Commands {
                    commands: part,
                    reply: reply.clone(),
                })
                .expect("shard workers live as long as the pool");
        }
        let mut ordered: Vec<Option<Reply>> = (0..total).map(|_| None).collect();
        for _ in 0..expected {
            for (slot, answer) in replies.recv().expect("every worker replies") {
                ordered[slot] = Some(answer);
            }
        }
        ordered
            .into_iter()
            .map(|answer| answer.expect("every command answered"))
            .collect()
    }

    /// The limit facts of the number's scope, after every shard has brought it up to now.
    pub fn usage(&self, number: PhoneNumberId) -> Result<Usage, RegistryError> {
        let state = self
            .core
            .registry
            .number(number)
            .ok_or(RegistryError::UnknownNumber(number))?;
        let (done, finished) = bounded(self.queues.len());
        for queue in &self.queues {
            queue
                .send(Work::Refresh {
                    number,
                    done: done.clone(),
                })
                .expect("shard workers live as long as the pool");
        }
        for _ in &self.queues {
            finished.recv().expect("every worker refreshes");
        }
        let now = self.clock.now().secs();
        state.scope.apply_due(&self.core.profile, now);
        Ok(Usage::of(
            &self.core.profile,
            &state.scope,
            state.restricted_until(),
            now,
        ))
    }

    pub fn ledger(&self) -> Ledger {
        let (reply, replies) = bounded(self.queues.len());
        for queue in &self.queues {
            queue
                .send(Work::Ledger {
                    reply: reply.clone(),
                })
                .expect("shard workers live as long as the pool");
        }
        let mut whole = Ledger::default();
        for _ in &self.queues {
            whole.merge(&replies.recv().expect("every worker answers"));
        }
        whole
    }

    /// Stops the workers after the work already queued and returns their shards.
    pub fn shutdown(self) -> Vec<Shard> {
        drop(self.queues);
        self.workers
            .into_iter()
            .map(|worker| worker.join().expect("a shard worker panicked"))
            .collect()
    }
}
