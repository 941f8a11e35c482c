//! The embeddable engine: all shards in the caller's thread, for providers that want the rules
//! without a server, for tests, and for simulations on a manual clock.
//!
//! Every call reads the injected clock once and routes to the shard that owns the person.
//! `wagate::workers::ShardPool` runs the same shards on their own threads.

use std::sync::Arc;

use crate::clock::{Clock, Timestamp};
use crate::config::{ConfigError, EngineConfig};
use crate::contact_events::{
    ConsentChange, ContactView, FailedSend, FailureEffect, FailureReversal, InboundEffect,
    InboundMessage,
};
use crate::decision::{Decision, DeferReason, Refusal, SendRequest};
use crate::ids::{Msisdn, PhoneNumberId};
use crate::price::Ledger;
use crate::profile::Profile;
use crate::registry::{Registry, RegistryError};
use crate::shard::Shard;
use crate::shard_context::{shard_for, Core};
use crate::state::contact::ConsentSource;
use crate::usage::Usage;

pub struct Engine {
    core: Arc<Core>,
    shards: Vec<Shard>,
    clock: Arc<dyn Clock>,
    /// The hour every shard was last brought up to (see `Engine::catch_up`).
    ticked_hour: u32,
}

impl Engine {
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine, ConfigError> {
        let core = Arc::new(Core::new(&config)?);
        let shards = (0..config.shards)
            .map(|i| Shard::new(core.clone(), i))
            .collect();
        Ok(Engine {
            core,
            shards,
            clock,
            ticked_hour: 0,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    pub fn profile(&self) -> &Profile {
        &self.core.profile
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The current time, after bringing every shard to the current hour. A shard slides its
    /// sketch windows when it sends, so one that has been idle would otherwise keep old hours in
    /// the shared estimate; once an hour, every shard slides and expires.
    fn catch_up(&mut self) -> Timestamp {
        let now = self.now();
        let hour = now.secs() / crate::clock::SECS_PER_HOUR;
        if hour != self.ticked_hour && self.shards.len() > 1 {
            for shard in &mut self.shards {
                shard.tick(now);
            }
        }
        self.ticked_hour = hour;
        now
    }

    fn shard_of(&mut self, person: Msisdn) -> &mut Shard {
        let index = shard_for(person.digits(), self.shards.len());
        &mut self.shards[index]
    }

    pub fn decide(&mut self, request: &SendRequest) -> Decision {
        let now = self.catch_up();
        let decision = self.shard_of(request.to).decide(request, now);
        if let Decision::Deferred {
            reason: DeferReason::TierLimit,
            ..
        } = decision
        {
            // Capacity may be due on another shard that has not expired it yet (more than it
            // could lend): every shard is at hand here, so expire it and, if any was, decide
            // again.
            if self.shards.len() > 1 {
                if let Some(number) = self.core.registry.number(request.number) {
                    let used = number.scope.used();
                    for shard in &mut self.shards {
                        shard.refresh_scope(&number.scope, now);
                    }
                    if number.scope.used() < used {
                        return self.shard_of(request.to).decide(request, now);
                    }
                }
            }
        }
        decision
    }

    pub fn inbound(&mut self, message: &InboundMessage) -> Result<InboundEffect, Refusal> {
        let now = self.now();
        self.shard_of(message.from).inbound(message, now)
    }

    pub fn consent(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        change: ConsentChange,
        source: ConsentSource,
    ) -> Result<(), Refusal> {
        let now = self.now();
        self.shard_of(person)
            .consent(number, person, change, source, now)
    }

    pub fn delivery_failed(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        code: u32,
    ) -> Result<FailureEffect, Refusal> {
        let now = self.now();
        self.shard_of(person)
            .delivery_failed(number, person, code, now)
    }

    /// The business blocked (or unblocked) `person` on `number` (Meta's block list).
    pub fn business_block(
        &mut self,
        number: PhoneNumberId,
        person: Msisdn,
        blocked: bool,
    ) -> Result<(), Refusal> {
        self.shard_of(person)
            .business_block(number, person, blocked)
    }

    /// A send that failed for good: its price and, if it took one, its recipient's slot are
    /// given back (see [`Shard::send_failed`]).
    pub fn send_failed(&mut self, failed: &FailedSend) -> Option<FailureReversal> {
        let now = self.now();
        self.shard_of(failed.to).send_failed(failed, now)
    }

    pub fn contact(&mut self, number: PhoneNumberId, person: Msisdn) -> Option<ContactView> {
        let now = self.now();
        self.shard_of(person).contact(number, person, now)
    }

    /// The limit facts of the number's scope, brought up to the current time first.
    pub fn usage(&mut self, number: PhoneNumberId) -> Result<Usage, RegistryError> {
        let now = self.catch_up();
        let state = self
            .core
            .registry
            .number(number)
            .ok_or(RegistryError::UnknownNumber(number))?;
        for shard in &mut self.shards {
            shard.refresh_scope(&state.scope, now);
        }
        state.scope.apply_due(&self.core.profile, now.secs());
        self.confirm_projections(now);
        Ok(Usage::of(
            &self.core.profile,
            &state.scope,
            state.restricted_until(),
            now.secs(),
        ))
    }

    /// The price ledger of all shards.
    pub fn ledger(&self) -> Ledger {
        let mut whole = Ledger::default();
        for shard in &self.shards {
            whole.merge(shard.ledger());
        }
        whole
    }

    /// Applies everything time has made due in every shard.
    pub fn tick(&mut self) {
        let now = self.now();
        for shard in &mut self.shards {
            shard.tick(now);
        }
        self.confirm_projections(now);
    }

    /// Where the operator lets wagate apply its own upgrade projections: each that came due
    /// is applied if the exact 7-day count of its scope earns it (see `ShardPool`'s twin).
    fn confirm_projections(&self, now: Timestamp) {
        let core = &self.core;
        if !core.apply_projected_upgrades {
            return;
        }
        let now = now.secs();
        let since = now.saturating_sub(crate::shard_context::WEEK_SECS - 1);
        for (_, scope) in core.registry.scopes() {
            if scope.projection_due(&core.profile, now).is_some() {
                let exact = self
                    .shards
                    .iter()
                    .map(|shard| shard.count_counted_since(scope.key, since))
                    .sum();
                scope.confirm_projection(&core.profile, exact, now);
            }
        }
    }

    pub fn contacts(&self) -> usize {
        self.shards.iter().map(Shard::contacts).sum()
    }

    /// Heap bytes held by the shards' contact tables, expiry queues and sketches.
    pub fn heap_bytes(&self) -> crate::shard::HeapBytes {
        self.shards.iter().map(Shard::heap_bytes).sum()
    }

    /// The shards, to restore them from disk before they start serving.
    pub fn shards_mut(&mut self) -> &mut [Shard] {
        &mut self.shards
    }

    /// The shards and their shared core, to run them on threads of their own.
    pub fn into_parts(self) -> (Arc<Core>, Vec<Shard>, Arc<dyn Clock>) {
        (self.core, self.shards, self.clock)
    }
}
